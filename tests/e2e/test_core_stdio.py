"""The real command over stdio, as Claude Desktop starts it."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from tests.helpers import wait_gone

COMMAND = str(Path(sys.executable).parent / "python-mcp-server")


async def test_stdio_round_trip_and_clean_exit(tmp_path: Path) -> None:
    transport = StdioTransport(
        command=COMMAND,
        args=["--transport", "stdio", "--workspace-dir", str(tmp_path / "ws")],
        env={"MCP_SESSION_IDLE_TIMEOUT": "0", "PATH": "/usr/bin:/bin"},
        keep_alive=False,
    )
    pids: set[int] = set()
    async with Client(transport) as client:
        await client.call_tool("run_python_code", {"code": "import os\nv = 7"})
        result = await client.call_tool("run_python_code", {"code": "v * 6"})
        assert result.structured_content is not None
        assert result.structured_content["result"] == "42"
        listing = await client.call_tool("list_sessions", {})
        assert listing.structured_content is not None
        pids = {s["kernel_pid"] for s in listing.structured_content["sessions"]}
        assert all(psutil.pid_exists(pid) for pid in pids)
    assert pids
    assert not wait_gone(pids)
