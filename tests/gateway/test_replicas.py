"""Replicas: several servers on one gateway serve the same sessions, with no sticky routing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Replicas
from tests.gateway.server_process import REPLICA_TOKEN, ServerProcess, connect
from tests.helpers import call, run, tool_error


async def test_set_through_a_read_through_b_delete_through_b(replicas: Replicas) -> None:
    a, b = await replicas.open(), await replicas.open()
    await call(a, "create_session", session_id="shared")
    await run(a, "answer = 41", session_id="shared")
    data = await run(b, "answer + 1", session_id="shared")
    assert data["result"] == "42"
    await run(b, "answer = 'from b'", session_id="shared")
    assert (await run(a, "answer", session_id="shared"))["result"] == "'from b'"

    await call(b, "delete_session", session_id="shared")
    assert replicas.gateway.kernel(replicas.kernel_id("shared")) is None
    text = await tool_error(a, "run_python_code", {"code": "answer", "session_id": "shared"})
    assert text.startswith("SESSION_NOT_FOUND:")
    text = await tool_error(b, "run_python_code", {"code": "answer", "session_id": "shared"})
    assert text.startswith("SESSION_NOT_FOUND:")
    listed = await call(a, "list_sessions")
    assert "shared" not in {s["session_id"] for s in listed["sessions"]}


async def test_health_through_b_of_a_session_started_through_a(replicas: Replicas) -> None:
    a, b = await replicas.open(), await replicas.open()
    await call(a, "create_session", session_id="watched")
    await run(a, "1", session_id="watched")
    health = await call(b, "get_kernel_health", session_id="watched")
    assert health["status"] == "idle"
    probe = await call(b, "check_kernel_responsiveness", session_id="watched")
    assert probe["responsive"] is True


async def test_default_session_and_names_are_shared(replicas: Replicas) -> None:
    a, b = await replicas.open(), await replicas.open()
    await run(a, "seen = 'default via a'")
    assert (await run(b, "seen"))["result"] == "'default via a'"
    await call(a, "create_session", session_id="one")
    text = await tool_error(b, "create_session", {"session_id": "one"})
    assert text.startswith("SESSION_EXISTS:")
    switched = await call(b, "switch_session", session_id="one")
    assert switched["action"] == "switched"
    await run(b, "where = 'one'")
    assert (await run(a, "where", session_id="one"))["result"] == "'one'"


async def test_restart_through_a_is_followed_not_repeated_by_b(replicas: Replicas) -> None:
    a, b = await replicas.open(), await replicas.open()
    await run(a, "old = 1")
    assert (await run(b, "old"))["result"] == "1"
    await call(a, "restart_kernel")
    await run(a, "new = 2")
    # B's first call learns that its kernel was restarted, and runs on the restarted
    # kernel: B attached to it instead of restarting it once more (A's "new" is there).
    data = await run(b, "new, 'old' in dir()")
    assert (data["status"], data["result"], data["code_ran"]) == ("ok", "(2, False)", True)
    assert data["kernel_restarted"] is True
    assert "restarted" in data["kernel_replacement"]["reason"], data
    again = await run(b, "new")
    assert (again["result"], again["kernel_restarted"]) == ("2", False)


async def test_interrupt_through_b_stops_code_running_through_a(replicas: Replicas) -> None:
    a, b = await replicas.open(), await replicas.open()
    await run(a, "kept = 'yes'")
    code = "import time\nprint('running', flush=True)\nwhile True: time.sleep(0.05)"
    running = asyncio.create_task(run(a, code, timeout=120))
    kernel = replicas.kernel_id("default")
    for _ in range(300):
        model = replicas.gateway.kernel(kernel)
        if model is not None and model["execution_state"] == "busy":
            break
        await asyncio.sleep(0.05)
    interrupted = await call(b, "interrupt_kernel")
    assert interrupted["action"] == "interrupted"
    data = await running
    assert data["status"] == "error"
    assert data["error"]["ename"] == "KeyboardInterrupt"
    assert (await run(b, "kept"))["result"] == "'yes'"


async def test_a_stopped_server_leaves_its_sessions_to_the_others(replicas: Replicas) -> None:
    a = await replicas.open()
    await run(a, "survives = 'yes'")
    await replicas.close(a)
    assert replicas.gateway.kernel(replicas.kernel_id("default")) is not None
    c = await replicas.open()
    assert (await run(c, "survives"))["result"] == "'yes'"


@pytest.fixture
def two_processes(replicas: Replicas, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    servers = [ServerProcess(replicas, tmp_path / f"state-{n}") for n in range(2)]
    try:
        yield servers
    finally:
        codes = [server.stop() for server in servers]
        assert codes == [0, 0], f"servers exited with {codes}"


async def test_two_server_processes_share_sessions(
    replicas: Replicas, two_processes: list[ServerProcess]
) -> None:
    a, b = [await connect(server) for server in two_processes]
    try:
        await call(a, "create_session", session_id="over-http")
        await run(a, "total = 40", session_id="over-http")
        assert (await run(b, "total + 2", session_id="over-http"))["result"] == "42"
        await call(b, "delete_session", session_id="over-http")
        text = await tool_error(a, "run_python_code", {"code": "1", "session_id": "over-http"})
        assert text.startswith("SESSION_NOT_FOUND:")
        assert replicas.gateway.kernel(replicas.kernel_id("over-http")) is None
    finally:
        for client in (a, b):
            await client.__aexit__(None, None, None)


def rpc(http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    response = http.post(url, json=body, headers=headers)
    response.raise_for_status()
    text = response.text
    if text.startswith("event:") or text.startswith("data:"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return json.loads(text) if text.strip() else None


def test_a_round_robin_balancer_needs_no_sticky_routing(
    two_processes: list[ServerProcess],
) -> None:
    """A 2025-06-18 client (mcp-session-id) whose requests alternate between replicas."""
    urls = [server.url for server in two_processes]
    headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {REPLICA_TOKEN}",
    }
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "round-robin", "version": "1"},
    }
    for server in two_processes:
        server.wait_healthy()
    with httpx.Client(timeout=60) as http:
        reply = rpc(
            http,
            urls[0],
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
            headers,
        )
        assert reply["result"]["serverInfo"]["name"] == "python-mcp-server"
        rpc(http, urls[1], {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
        codes = ["rr = 20", "rr += 1", "rr * 2"]
        results = []
        for n, code in enumerate(codes):
            body = {
                "jsonrpc": "2.0",
                "id": 10 + n,
                "method": "tools/call",
                "params": {"name": "run_python_code", "arguments": {"code": code}},
            }
            reply = rpc(http, urls[n % 2], body, headers)
            results.append(reply["result"]["structuredContent"].get("result"))
        assert results == [None, None, "42"]
        body = {
            "jsonrpc": "2.0",
            "id": 20,
            "method": "tools/call",
            "params": {"name": "delete_session", "arguments": {"session_id": "default"}},
        }
        rpc(http, urls[1], body, headers)
