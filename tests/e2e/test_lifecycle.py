"""Signals: SIGTERM/SIGINT end every kernel; a SIGKILLed server's kernels are reaped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from fastmcp import Client

from tests.e2e.conftest import LaunchedServer, StartServer, assert_gone, state_of
from tests.helpers import wait_for_path


async def open_sessions(server: LaunchedServer, names: list[str]) -> set[int]:
    async with Client(server.mcp_url, auth=server.token) as client:
        for name in names:
            await client.call_tool("create_session", {"session_id": name})
            await client.call_tool("run_python_code", {"code": "1", "session_id": name})
        listing = await client.call_tool("list_sessions", {})
    assert listing.structured_content is not None
    pids = {s["kernel_pid"] for s in listing.structured_content["sessions"]}
    assert len(pids) == len(names)
    return pids | server.kernel_pids()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_shuts_every_kernel_down(start_server: StartServer, sig: int) -> None:
    server = start_server()
    pids = await open_sessions(server, ["a", "b"])
    assert server.stop(sig) == 0, server.log()
    assert_gone(pids)


async def test_killed_servers_kernels_are_reaped_at_next_start(
    start_server: StartServer,
) -> None:
    first = start_server()
    pids = await open_sessions(first, ["x", "y"])
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    second = start_server(workspace=first.workspace)
    async with Client(second.mcp_url, auth=second.token) as client:
        result = await client.call_tool("run_python_code", {"code": "1+1"})
        assert result.structured_content is not None
        assert result.structured_content["result"] == "2"
    assert_gone(pids)
    records = list((first.state / "kernels").glob("*.json"))
    assert {int(p.stem) for p in records}.isdisjoint(pids)


def test_orphan_records_are_ended_at_start(start_server: StartServer, tmp_path: Path) -> None:
    """The reaping mechanism itself: a recorded kernel whose owner is gone gets ended."""
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    workspace = tmp_path / "reap-ws"
    records = state_of(workspace) / "kernels"
    records.mkdir(parents=True)
    create = psutil.Process(orphan.pid).create_time()
    (records / f"{orphan.pid}.json").write_text(
        json.dumps(
            {
                "kernel": {"pid": orphan.pid, "create_time": create},
                "owner": {"pid": dead_owner.pid, "create_time": time.time() - 100},
            }
        )
    )
    try:
        start_server(workspace=workspace)
        assert orphan.wait(20) == -signal.SIGKILL
        assert not (records / f"{orphan.pid}.json").exists()
    finally:
        if orphan.poll() is None:
            os.kill(orphan.pid, signal.SIGKILL)
            orphan.wait()


async def test_sigterm_while_a_cell_runs(start_server: StartServer) -> None:
    import asyncio

    server = start_server()
    async with Client(server.mcp_url, auth=server.token) as client:
        await client.call_tool("run_python_code", {"code": "1"})
        busy = asyncio.ensure_future(
            client.call_tool(
                "run_python_code", {"code": "open('running', 'w').close()\nwhile True: pass"}
            )
        )
        await wait_for_path(server.workspace / "running")
        pids = server.kernel_pids()
        assert pids
        assert await asyncio.to_thread(server.stop) == 0, server.log()
        busy.cancel()
        with pytest.raises((asyncio.CancelledError, Exception)):
            await busy
    assert_gone(pids)


def test_a_kernel_started_but_never_recorded_is_ended_at_start(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A server killed between starting a kernel and recording its pid leaves only the
    reservation naming the kernel's connection file; the next server finds it by that."""
    marker = str(tmp_path / "k0123456789.json")
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; time.sleep(120)", "-f", marker],
        start_new_session=True,
    )
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    workspace = tmp_path / "reap-pending-ws"
    records = state_of(workspace) / "kernels"
    records.mkdir(parents=True)
    reservation = records / "0123456789.pending"
    reservation.write_text(
        json.dumps(
            {
                "marker": marker,
                "owner": {"pid": dead_owner.pid, "create_time": time.time() - 100},
            }
        )
    )
    try:
        start_server(workspace=workspace)
        assert orphan.wait(20) == -signal.SIGKILL
        assert not reservation.exists()
    finally:
        if orphan.poll() is None:
            os.kill(orphan.pid, signal.SIGKILL)
            orphan.wait()
