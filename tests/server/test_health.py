"""Health tools and the monitor's automatic recovery, against real kernels."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import httpx
import psutil
import pytest
from fastmcp import Client, FastMCP

from python_mcp_server.core.sessions.session import KernelSession
from python_mcp_server.server.services import Services
from tests.helpers import call, run, tool_error, wait_for_new_kernel, wait_gone


async def test_kernel_health_of_an_idle_kernel(client: Client[Any]) -> None:
    await run(client, "data = bytearray(30 * 1024 * 1024)")
    health = await call(client, "get_kernel_health")
    assert health["status"] == "idle"
    assert psutil.Process(health["pid"]).is_running()
    assert health["memory_mb"] > 30
    assert health["threads"] >= 1
    assert health["uptime"] > 0
    assert health["open_files"] >= 0
    assert health["fds"] > 0
    assert health["cpu_percent"] >= 0
    assert health["restarts"] == 0
    assert health["last_error"] is None


async def test_busy_kernel_reports_busy_and_answers_on_control(client: Client[Any]) -> None:
    await run(client, "1")
    cell = asyncio.create_task(run(client, "import time\ntime.sleep(1.5)"))
    for _ in range(200):
        health = await call(client, "get_kernel_health")
        if health["status"] == "busy":
            break
        await asyncio.sleep(0.01)
    assert health["status"] == "busy"
    probe = await call(client, "check_kernel_responsiveness", timeout=5)
    assert probe["busy"] is True
    assert probe["channel"] == "control"
    assert probe["responsive"] is True
    await cell
    idle = await call(client, "check_kernel_responsiveness")
    assert (idle["busy"], idle["channel"], idle["responsive"]) == (False, "shell", True)
    assert idle["response_time"] > 0


async def test_health_tools_need_an_existing_session(client: Client[Any]) -> None:
    for tool in ("get_kernel_health", "check_kernel_responsiveness"):
        text = await tool_error(client, tool, {"session_id": "nobody"})
        assert text.startswith("SESSION_NOT_FOUND:"), tool
    text = await tool_error(client, "health_check", {"session_id": "nobody"})
    assert text.startswith("SESSION_NOT_FOUND:")


SECRETS = {
    "auth_token": "tok-never-shown-123",
    "gateway_token": "gw-never-shown-456",
    "pip_index_url": "https://alice:pw-never-shown-789@pypi.example.org/simple",
}


@pytest.mark.parametrize("settings_overrides", [SECRETS])
async def test_health_check_reports_metrics_without_secrets(client: Client[Any]) -> None:
    await run(client, "x = 1")
    await run(client, "x + 1")
    await run(client, "1/0")
    report = await call(client, "health_check", session_id="default")
    assert report["status"] == "healthy", report["problems"]
    assert report["version"]
    assert report["python_version"].count(".") == 2
    metrics = report["metrics"]
    assert metrics["total_executions"] == 3
    assert metrics["errors"] == 1
    assert metrics["success_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["average_execution_time"] > 0
    assert metrics["average_kernel_memory_mb"] > 0
    assert metrics["active_sessions"] == 1
    assert metrics["uptime"] > 0
    assert report["kernel"]["session_id"] == "default"
    assert report["history_entries"] == 3
    settings = report["settings"]
    assert settings["auth_token"] == "***"
    assert settings["gateway_token"] == "***"
    assert settings["pip_index_url"] == "https://***@pypi.example.org/simple"
    assert "workspace_dir" not in settings
    assert report["limits"]["execution_timeout"] == 20
    assert report["limits"]["kernel_launcher"] == report["kernel_launcher"]
    assert "sandbox" in report["limits"]["enforced"]
    dumped = json.dumps(report)
    for secret in ("tok-never-shown-123", "gw-never-shown-456", "pw-never-shown-789"):
        assert secret not in dumped


async def test_health_check_of_an_environment(client: Client[Any]) -> None:
    report = await call(client, "health_check", venv_name="default")
    assert report["environment"]["ok"] is True
    assert report["environment"]["python_version"].count(".") == 2
    text = await tool_error(client, "health_check", {"venv_name": "no-such-env"})
    assert text.startswith("VENV_NOT_FOUND:")


async def wait_rounds(services: Services, count: int) -> None:
    """Wait until the monitor completed ``count`` more rounds."""
    target = services.health.rounds + count
    for _ in range(1200):
        if services.health.rounds >= target:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the health monitor stopped running rounds")


def python_of(pid: int) -> int:
    """The process running the kernel's Python: the pid itself, or its sandboxed child
    (not that child's own child, the sandbox's network forwarder)."""
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    pythons = [
        p.pid
        for p in tree
        if p.name() != "bwrap" and (p.pid == pid or p.parent().name() == "bwrap")
    ]
    assert len(pythons) == 1, [p.cmdline()[:2] for p in tree]
    return pythons[0]


@pytest.mark.parametrize("settings_overrides", [{"health_interval": 0.5}])
@pytest.mark.parametrize("target", ["kernel pid", "python process"])
async def test_monitor_restarts_a_killed_kernel_within_two_intervals(
    client: Client[Any], services: Services, target: str
) -> None:
    await run(client, "1")
    session = services.sessions.get("default")
    monitor = services.health
    replaced_in_round: list[int] = []

    async def note(_session: KernelSession, _reason: str) -> None:
        replaced_in_round.append(monitor.rounds)

    services.sessions.replacement_hooks.append(note)
    old_pid = session.kernel_pid
    assert old_pid is not None
    victim = old_pid if target == "kernel pid" else python_of(old_pid)
    rounds_at_kill = monitor.rounds
    killed_at = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    await wait_for_new_kernel(session, old_pid)
    elapsed = time.perf_counter() - killed_at
    # The round running at the kill may have looked already; the next one must act.
    assert replaced_in_round
    assert replaced_in_round[0] - rounds_at_kill <= 1
    print(f"monitor replaced a kernel ({target} SIGKILLed) in {elapsed:.3f} s (interval 0.5 s)")
    health = await call(client, "get_kernel_health")
    assert health["status"] == "idle"
    assert health["pid"] == session.kernel_pid != old_pid
    assert health["restarts"] == 1
    assert health["auto_restarts"] == 1
    # a sandbox wrapper reports its child's SIGKILL as exit code 128 + 9
    assert "SIGKILL" in health["last_error"] or "code 137" in health["last_error"]
    assert not wait_gone({old_pid, victim})
    assert (await run(client, "'works'"))["result"] == "'works'"


@pytest.mark.parametrize("settings_overrides", [{"health_interval": 0.5, "max_kernel_restarts": 1}])
async def test_restart_limit_leaves_the_kernel_dead_until_used(
    client: Client[Any], services: Services
) -> None:
    await run(client, "1")
    session = services.sessions.get("default")
    first_pid = session.kernel_pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    await wait_for_new_kernel(session, first_pid)
    second_pid = session.kernel_pid
    assert second_pid is not None
    os.kill(second_pid, signal.SIGKILL)
    await wait_rounds(services, 3)
    health = await call(client, "get_kernel_health")
    assert health["status"] == "dead"
    assert health["pid"] is None
    assert health["auto_restarts"] == 1
    assert "SIGKILL" in health["last_error"]
    report = await call(client, "health_check")
    assert report["status"] == "degraded"
    assert any("'default' kernel is dead" in p for p in report["problems"])
    # A user's call brings it back (the execution replaces the dead kernel) ...
    revived = await run(client, "1 + 1")
    assert revived["kernel_restarted"] is True
    assert (await run(client, "2 + 2"))["result"] == "4"
    # ... and the monitor counts afresh.
    await wait_rounds(services, 2)
    health = await call(client, "get_kernel_health")
    assert (health["status"], health["auto_restarts"]) == ("idle", 0)


async def test_health_route_answers_503_until_services_run(
    server: FastMCP, services: Services
) -> None:
    """In process: the route before the lifespan started the services, then during it."""
    app = server.http_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        down = await http.get("/health")
        assert down.status_code == 503
        assert down.json()["status"] == "unhealthy"
        await services.start()
        try:
            up = await http.get("/health")
        finally:
            await services.aclose()
    assert up.status_code == 200
    body = up.json()
    assert body["status"] == "healthy"
    assert body["version"]
    assert up.headers["cache-control"] == "no-store"
