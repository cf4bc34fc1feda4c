"""Every process a kernel started ends with its session, whatever the launcher: a
double-forked ``setsid`` daemon (it leaves the kernel's process group and loses its
parent) survives neither delete_session nor the server's SIGTERM."""

from __future__ import annotations

import os
import signal
from typing import Any

import psutil
from fastmcp import Client

from tests.e2e.conftest import LaunchedServer, StartServer, assert_gone

DAEMON = """
import os, time
read, write = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # the grandchild: a daemon, reparented once its parent exits
        os.write(write, str(os.getpid()).encode())
        os.close(write)
        time.sleep(600)
    os._exit(0)
os.close(write)
daemon = int(os.read(read, 32))
os.wait()
daemon
"""


async def start_daemon(client: Client[Any], session_id: str) -> int:
    result = await client.call_tool("run_python_code", {"code": DAEMON, "session_id": session_id})
    data = result.structured_content
    assert data is not None
    assert data["status"] == "ok", data
    pid = int(data["result"])
    daemon = psutil.Process(pid)
    assert daemon.is_running()
    assert daemon.status() != psutil.STATUS_ZOMBIE
    listing = (await client.call_tool("list_sessions", {})).structured_content
    assert listing is not None
    kernel = next(s for s in listing["sessions"] if s["session_id"] == session_id)["kernel_pid"]
    # it left the kernel's session (setsid) and lost its first parent (double fork)
    assert os.getsid(pid) != os.getsid(kernel)
    return pid


def server_with_sandbox(start_server: StartServer, sandbox: str) -> LaunchedServer:
    return start_server("--sandbox", sandbox)


async def test_a_setsid_daemon_ends_with_its_session(start_server: StartServer) -> None:
    # unsandboxed: the pids the kernel sees are the host's (a sandbox has its own pid
    # namespace, which ends whole with the sandbox)
    server = server_with_sandbox(start_server, "none")
    async with Client(server.mcp_url, auth=server.token) as client:
        await client.call_tool("create_session", {"session_id": "d"})
        daemon = await start_daemon(client, "d")
        await client.call_tool("delete_session", {"session_id": "d"})
        assert_gone({daemon})
    assert server.stop() == 0, server.log()


async def test_a_setsid_daemon_ends_at_sigterm(start_server: StartServer) -> None:
    server = server_with_sandbox(start_server, "none")
    async with Client(server.mcp_url, auth=server.token) as client:
        daemon = await start_daemon(client, "default")
    assert server.stop(signal.SIGTERM) == 0, server.log()
    assert_gone({daemon})
