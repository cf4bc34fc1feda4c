"""What the server costs an agent's context, measured through the real protocol.

Sizes are the serialized tools/list answer (bytes) and the content plus structuredContent
of a CallToolResult (characters), as bench/measure_context.py prints them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.app import build_server
from python_mcp_server.settings import Settings


def result_size(result: Any) -> int:
    wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    sent = {key: wire[key] for key in ("content", "structuredContent") if key in wire}
    return len(json.dumps(sent, separators=(",", ":"), ensure_ascii=False))


async def tools_list_bytes(workspace: Path, toolsets: str) -> int:
    async with Client(build_server(Settings(workspace_dir=workspace, toolsets=toolsets))) as c:
        listing = await c.list_tools_mcp()
    wire = listing.model_dump(mode="json", by_alias=True, exclude_none=True)
    return len(json.dumps(wire, separators=(",", ":")).encode())


async def test_default_tool_list_is_lean(workspace: Path) -> None:
    assert await tools_list_bytes(workspace, "default") <= 12_000
    assert await tools_list_bytes(workspace, "execution") <= 4_000


async def test_every_tool_is_described_and_annotated(workspace: Path) -> None:
    async with Client(build_server(Settings(workspace_dir=workspace, toolsets="all"))) as c:
        tools = await c.list_tools()
    for tool in tools:
        assert tool.description, tool.name
        assert tool.output_schema is None, tool.name
        hints = tool.annotations
        assert hints is not None, tool.name
        if not hints.read_only_hint:
            assert hints.destructive_hint is not None, tool.name
            assert hints.idempotent_hint is not None, tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name}"
            assert "title" not in prop, f"{tool.name}.{name}"
            assert {"type": "null"} not in prop.get("anyOf", []), f"{tool.name}.{name}"


async def test_package_tools_describe_their_own_arguments(client: Client[Any]) -> None:
    tools = {tool.name: tool for tool in await client.list_tools()}
    for name in ("uninstall_packages", "list_packages"):
        props = tools[name].input_schema["properties"]
        assert "Install" not in json.dumps(props), name
    removed = tools["uninstall_packages"].input_schema["properties"]["packages"]
    assert "versions" in removed["description"]
    assert ">=" not in removed["description"]


async def test_print_hi_is_small(client: Client[Any]) -> None:
    result = await client.call_tool_mcp("run_python_code", {"code": "print('hi')"})
    assert result.content[0].text == "hi"  # type: ignore[union-attr]
    assert result_size(result) < 160


async def test_a_dataframe_comes_back_once_as_text(client: Client[Any]) -> None:
    code = "import pandas as pd\npd.DataFrame({'a': range(5), 'b': list('vwxyz')})"
    result = await client.call_tool_mcp("run_python_code", {"code": code})
    assert result.structured_content is not None
    assert "outputs" not in result.structured_content  # no HTML beside the text
    assert "0  0  v" in result.structured_content["result"]
    assert result_size(result) < 400


async def test_zero_division_is_small(client: Client[Any]) -> None:
    result = await client.call_tool_mcp("run_python_code", {"code": "1/0"})
    assert result.structured_content is not None
    assert result.structured_content["error"]["ename"] == "ZeroDivisionError"
    assert "ZeroDivisionError: division by zero" in result.content[0].text  # type: ignore[union-attr]
    assert result_size(result) < 450


async def test_a_library_error_keeps_the_users_line_and_no_server_paths(
    client: Client[Any], workspace: Path
) -> None:
    code = "import pandas as pd\nframe = pd.DataFrame({'a': [1]})\nframe['missing']"
    result = await client.call_tool_mcp("run_python_code", {"code": code})
    assert result.structured_content is not None
    text = result.content[0].text  # type: ignore[union-attr]
    assert "frame['missing']" in text
    assert text.rstrip().endswith("KeyError: 'missing'")
    assert "pandas/core/" in text  # library frames named from their package
    wire = json.dumps(result.model_dump(mode="json", by_alias=True))
    for leak in ("Could not get source", "\\u001b", sys.prefix, str(workspace)):
        assert leak not in wire, leak
    assert result_size(result) <= 2_500


async def test_an_error_in_a_workspace_module_names_it_relative(
    client: Client[Any], workspace: Path
) -> None:
    (workspace / "helper.py").write_text("def boom():\n    raise ValueError('inside')\n")
    code = "import sys\nsys.path.insert(0, '.')\nimport helper\nhelper.boom()"
    result = await client.call_tool_mcp("run_python_code", {"code": code})
    text = result.content[0].text  # type: ignore[union-attr]
    assert "File helper.py:2, in boom()" in text
    assert "raise ValueError('inside')" in text  # the user's own frame keeps its source
    assert str(workspace) not in text


@pytest.mark.parametrize("code", ["import os\nos.getcwd()", "import subprocess, sys, shutil"])
async def test_ordinary_imports_are_quiet(client: Client[Any], code: str) -> None:
    result = await client.call_tool_mcp("run_python_code", {"code": code})
    assert result.structured_content is not None
    assert "warnings" not in result.structured_content


async def test_unknown_arguments_are_still_refused(client: Client[Any]) -> None:
    result = await client.call_tool(
        "run_python_code", {"code": "1", "bogus": 1}, raise_on_error=False
    )
    assert result.is_error
    assert result.content[0].text.startswith("INVALID_INPUT")  # type: ignore[union-attr]
