"""--toolsets and MCP_TOOLSETS on the real command: the listed tools follow them."""

from __future__ import annotations

from pathlib import Path

from fastmcp import Client

from python_mcp_server.server.app import build_server
from python_mcp_server.settings import Settings
from tests.e2e.conftest import LaunchedServer, StartServer


async def listed_names(server: LaunchedServer) -> set[str]:
    async with Client(server.mcp_url, auth=server.token) as client:
        return {tool.name for tool in await client.list_tools()}


async def group_tools(toolsets: str, workspace: Path) -> set[str]:
    """What a server with these toolsets registers, built in-process (nothing started)."""
    server = build_server(Settings(workspace_dir=workspace, toolsets=toolsets))
    return {tool.name for tool in await server.list_tools()}


async def test_toolsets_flag_limits_the_tools(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("--toolsets", "execution")
    listed = await listed_names(server)
    assert "run_python_code" in listed
    assert "create_session" not in listed
    assert listed == await group_tools("execution", tmp_path)


async def test_toolsets_environment_variable_and_compat(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(env={"MCP_TOOLSETS": "execution,sessions,compat"})
    names = await listed_names(server)
    assert {"run_python_code", "create_session", "execute_python", "execute_python_code"} <= names
    assert names == await group_tools("execution,sessions,compat", tmp_path)
    default = await listed_names(start_server())
    assert "execute_python" not in default
    assert default == await group_tools("default", tmp_path)
