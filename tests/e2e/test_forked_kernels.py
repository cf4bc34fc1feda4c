"""The command with forked, preloaded kernels: nothing outlives the server, however it ends."""

from __future__ import annotations

import signal

import psutil
import pytest

from tests.e2e.conftest import StartServer, assert_gone
from tests.e2e.test_lifecycle import open_sessions

FORKED = {"MCP_SANDBOX": "none", "MCP_KERNEL_PRELOAD": "numpy", "MCP_KERNEL_FORK": "true"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_template_and_forked_kernels_end_with_the_server(
    start_server: StartServer, sig: int
) -> None:
    server = start_server(env=FORKED)
    pids = await open_sessions(server, ["a", "b"])  # the kernels, the pool and the template
    server_children = {p.pid for p in psutil.Process(server.process.pid).children()}
    (template,) = [p for p in pids if p in server_children]  # the kernels are its children
    forked = {p.pid for p in psutil.Process(template).children()}
    assert len(forked) >= 2
    assert forked <= pids
    server.process.send_signal(sig)
    server.process.wait(20)
    # After SIGKILL no shutdown ran: each kernel watches the server, the template its stdin.
    assert_gone(pids, timeout=20)
