"""Helpers shared by tests: process checks and tool-call shortcuts."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import psutil
from fastmcp import Client

from python_mcp_server.core.sessions.session import KernelSession

#: A cell that catches every KeyboardInterrupt: only a kernel restart stops it.
SWALLOWS_INTERRUPTS = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.05)\n"
    "    except KeyboardInterrupt:\n"
    "        pass\n"
)


def kernel_children() -> set[int]:
    """Pids of ipykernel processes started by this test process."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                found.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """Wait for processes to end; return the ones still alive."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return {p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE}


async def call(client: Client[Any], tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed and return its structured result."""
    result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None
    return dict(result.structured_content)


async def run(client: Client[Any], code: str, **arguments: Any) -> dict[str, Any]:
    """Call run_python_code and return its structured result."""
    result = await client.call_tool("run_python_code", {"code": code, **arguments})
    assert result.structured_content is not None
    return dict(result.structured_content)


async def tool_error(client: Client[Any], tool: str, arguments: dict[str, Any]) -> str:
    """Call a tool that must fail; return the error text (``CODE: message``)."""
    result = await client.call_tool(tool, arguments, raise_on_error=False)
    assert result.is_error, f"{tool} should have failed: {result}"
    text = result.content[0].text  # type: ignore[union-attr]
    assert isinstance(text, str)
    return text


async def wait_for_new_kernel(session: KernelSession, old_pid: int) -> None:
    """Wait until the session runs a live kernel other than ``old_pid``."""
    for _ in range(1200):
        if session.kernel_pid != old_pid and session.client.is_alive():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the kernel was not replaced")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
