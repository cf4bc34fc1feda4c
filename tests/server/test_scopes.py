"""Every tool of every toolset needs a named scope (none falls back to admin), and a
caller without a token (in-memory, stdio) may call them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastmcp import Client

from python_mcp_server.server.app import build_server
from python_mcp_server.server.middleware.scopes import FALLBACK_SCOPE, scope_of
from python_mcp_server.settings import Settings
from tests.helpers import call


async def test_every_tool_has_a_scope(tmp_path: Path) -> None:
    server = build_server(Settings(workspace_dir=tmp_path, toolsets="all"))
    tools = await server.list_tools()
    assert tools
    unplaced = [t.name for t in tools if scope_of(t.name, set(t.tags)) == FALLBACK_SCOPE]
    assert unplaced == []


async def test_no_token_holds_every_scope(client: Client[Any]) -> None:
    await call(client, "write_file", path="a.txt", content="hi")
    assert (await call(client, "read_file", path="a.txt"))["content"] == "hi"
