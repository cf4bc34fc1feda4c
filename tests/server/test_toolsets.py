"""Toolsets: every tool tagged with its group; --toolsets / MCP_TOOLSETS pick the groups."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP

from python_mcp_server.errors import InvalidInputError
from python_mcp_server.server.app import build_server
from python_mcp_server.server.tools.compat import compat_tool
from python_mcp_server.server.toolsets import (
    LATE_TOOLSETS,
    OPT_IN_TOOLSETS,
    TOOLSETS,
    select_toolsets,
)
from python_mcp_server.settings import Settings
from tests.e2e.conftest import COMMAND
from tests.helpers import tool_error


def tool_tags(tool: Any) -> set[str]:
    return set((tool.meta or {}).get("fastmcp", {}).get("tags", []))


async def registered_by_group(workspace: Path) -> dict[str, set[str]]:
    """Tool names each group registers on its own (no services started)."""
    names = {}
    for group in TOOLSETS:
        server = build_server(Settings(workspace_dir=workspace, toolsets=group))
        names[group] = {tool.name for tool in await server.list_tools()}
    return names


def test_default_is_every_group_but_compat() -> None:
    assert select_toolsets("default") == [g for g in TOOLSETS if g not in OPT_IN_TOOLSETS]
    assert select_toolsets("") == select_toolsets("default")
    assert "compat" not in select_toolsets("default")
    assert set(select_toolsets("all")) == set(TOOLSETS)


def test_names_are_trimmed_case_insensitive_and_ordered() -> None:
    assert select_toolsets(" Sessions , EXECUTION ") == ["execution", "sessions"]
    chosen = select_toolsets("compat,default")
    assert chosen[-1] == "compat"
    assert set(chosen) == set(TOOLSETS) - (OPT_IN_TOOLSETS - {"compat"})


def test_groups_that_replace_tools_register_last() -> None:
    for spec in ("all", "compat,execution", "default,compat"):
        chosen = select_toolsets(spec)
        late = [g for g in chosen if g in LATE_TOOLSETS]
        assert chosen[len(chosen) - len(late) :] == late


def test_unknown_toolset_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="unknown toolset"):
        select_toolsets("execution,shell")


async def test_every_tool_is_tagged_with_exactly_its_group(workspace: Path) -> None:
    for group in TOOLSETS:
        server = build_server(Settings(workspace_dir=workspace, toolsets=group))
        tools = await server.list_tools()
        assert tools, f"group {group} registers no tool"
        for tool in tools:
            assert tool.tags & set(TOOLSETS) == {group}, (tool.name, tool.tags)


@pytest.mark.parametrize("settings_overrides", [{"toolsets": "execution,sessions"}])
async def test_server_with_two_groups_lists_only_their_tools(
    client: Client[Any], workspace: Path
) -> None:
    by_group = await registered_by_group(workspace)
    listed = await client.list_tools()
    assert {tool.name for tool in listed} == by_group["execution"] | by_group["sessions"]
    for tool in listed:
        assert tool_tags(tool) & {"execution", "sessions"}, tool.name
    others = set().union(*(v for k, v in by_group.items() if k not in ("execution", "sessions")))
    assert not others & {tool.name for tool in listed}
    result = await client.call_tool("run_python_code", {"code": "6 * 7"})
    assert result.structured_content is not None
    assert result.structured_content["result"] == "42"
    hidden = next(iter(sorted(others)))
    text = await tool_error(client, hidden, {})
    assert text == f"INVALID_INPUT: unknown tool {hidden!r}"


@pytest.mark.parametrize("settings_overrides", [{"toolsets": "all"}])
async def test_all_is_every_tool_once_with_compat_replacing_natives(
    client: Client[Any], workspace: Path
) -> None:
    by_group = await registered_by_group(workspace)
    listed = await client.list_tools()
    names = [tool.name for tool in listed]
    assert len(names) == len(set(names)), "a tool name is listed twice"
    assert set(names) == set().union(*by_group.values())
    replaced = by_group["compat"] & set().union(*(v for k, v in by_group.items() if k != "compat"))
    for tool in listed:
        if tool.name in replaced:
            assert tool_tags(tool) == {"compat"}, f"{tool.name} is not the compat variant"


async def test_compat_tool_replaces_a_native_tool_of_the_same_name() -> None:
    mcp = FastMCP("t", on_duplicate="error")

    @mcp.tool(tags={"health"})
    def health_check(session_id: str | None = None) -> str:
        return "native"

    @compat_tool(mcp)
    def health_check(venvName: str | None = None) -> str:  # noqa: F811
        return "compat"

    async with Client(mcp) as client:
        tools = await client.list_tools()
        assert [t.name for t in tools] == ["health_check"]
        assert "venvName" in tools[0].input_schema["properties"]
        assert tool_tags(tools[0]) == {"compat"}
        assert (await client.call_tool("health_check", {})).data == "compat"


def test_cli_refuses_an_unknown_toolset(tmp_path: Path) -> None:
    done = subprocess.run(
        [COMMAND, "--toolsets", "execution,nope", "--workspace-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "INVALID_INPUT: unknown toolset(s) nope" in done.stderr
