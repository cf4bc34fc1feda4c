"""One budget for the whole result (MCP_MAX_RESULT_CHARS), through the real protocol.

Sizes are measured as the client receives a result (content plus structuredContent, image
data not counted), as bench/measure_context.py prints them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastmcp import Client
from fastmcp.tools.base import ToolResult
from fastmcp_tasks import call_tool_task
from mcp_types import TextContent

from python_mcp_server.core.workspace.outputs import OutputFiles, OutputLimits
from python_mcp_server.core.workspace.resolver import Workspace, WorkspaceConfig
from python_mcp_server.server.result_budget import NOTE_ALLOWANCE, ResultBudget
from python_mcp_server.settings import Settings

BUDGET = Settings().max_result_chars


def result_size(result: Any) -> int:
    """Characters of a result as sent, image data not counted."""
    if hasattr(result, "model_dump"):
        wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:  # fastmcp's CallToolResult (a task's result): the same two parts
        wire = {
            "content": [
                block.model_dump(mode="json", by_alias=True, exclude_none=True)
                for block in result.content
            ],
            "structuredContent": result.structured_content,
        }
    for block in wire.get("content", []):
        if block.get("type") == "image":
            block["data"] = ""
    sent = {key: wire[key] for key in ("content", "structuredContent") if key in wire}
    return len(json.dumps(sent, separators=(",", ":"), ensure_ascii=False))


def texts(result: Any) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


def links(result: Any) -> list[str]:
    return [str(block.uri) for block in result.content if block.type == "resource_link"]


async def read_link(client: Client[Any], uri: str) -> str:
    contents = await client.read_resource(uri)
    return contents[0].text  # type: ignore[union-attr]


def printing(chars: int) -> str:
    """A cell printing HEAD, then ``chars`` characters, then TAIL."""
    return f"print('HEAD' + ''.join(chr(97 + i % 26) for i in range({chars})) + 'TAIL')"


async def test_the_default_sits_well_under_a_25k_token_cap() -> None:
    # Even at 2 characters per token (dense code, numbers), the result is < 25,000 tokens.
    assert (BUDGET + NOTE_ALLOWANCE) / 2 < 25_000


async def test_a_result_just_under_the_budget_is_untouched(client: Client[Any]) -> None:
    chars = 1000
    for _ in range(3):  # the output appears twice: in the text and in structured stdout
        result = await client.call_tool_mcp("run_python_code", {"code": f"print('x' * {chars})"})
        if BUDGET - 20 < result_size(result) <= BUDGET:
            break
        chars += (BUDGET - result_size(result)) // 2 - 5
    assert BUDGET - 20 < result_size(result) <= BUDGET
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "x" * chars + "\n"
    assert "truncated" not in result.structured_content
    assert texts(result) == ["x" * chars]
    assert links(result) == []


async def test_a_result_far_over_keeps_head_and_tail_and_links_the_whole(
    client: Client[Any], workspace: Path
) -> None:
    chars = 90_000  # under MCP_MAX_OUTPUT_CHARS: the whole stdout is in the result's whole
    result = await client.call_tool_mcp("run_python_code", {"code": printing(chars)})
    size = result_size(result)
    assert BUDGET // 2 < size <= BUDGET + NOTE_ALLOWANCE
    data = result.structured_content
    assert data is not None
    text = texts(result)[0]
    for shown in (text, data["stdout"]):
        assert shown.startswith("HEADabc")
        assert shown.rstrip("\n").endswith("TAIL")
        assert "characters cut ..." in shown
    note = texts(result)[-1]
    assert "MCP_MAX_RESULT_CHARS" in note
    (uri,) = links(result)
    saved = uri.removeprefix("workspace://")
    assert saved.startswith(f"outputs/{data['execution_id']}-result-")
    assert saved in note
    whole = await read_link(client, uri)
    expected = "HEAD" + "".join(chr(97 + i % 26) for i in range(chars)) + "TAIL"
    assert whole == expected
    assert (workspace / saved).read_text() == expected
    dropped = int(note.split("about ")[1].split(" ")[0])
    assert dropped > 2 * chars - BUDGET - NOTE_ALLOWANCE
    assert data["truncated"] is True
    # The whole was saved after the run: it is not the next run's new file.
    after = await client.call_tool_mcp("run_python_code", {"code": "x = 1"})
    assert after.structured_content is not None
    assert "new_files" not in after.structured_content


async def test_a_stream_past_the_memory_cap_shows_its_real_end(client: Client[Any]) -> None:
    result = await client.call_tool_mcp("run_python_code", {"code": printing(3_000_000)})
    assert result_size(result) <= BUDGET + NOTE_ALLOWANCE
    data = result.structured_content
    assert data is not None
    assert data["truncated"] is True
    assert data["stdout"].startswith("HEAD")
    assert data["stdout"].rstrip("\n").endswith("TAIL")  # the end of the stream, not of a head
    full = await read_link(client, f"workspace://{data['stdout_path']}")
    assert len(full) == 3_000_009
    assert f"workspace://{data['stdout_path']}" in links(result)


async def test_run_script_as_a_task_is_fitted_too(client: Client[Any]) -> None:
    await client.call_tool("save_script", {"name": "loud", "content": printing(60_000)})
    task = await call_tool_task(client, "run_script", {"path": "scripts/loud.py"})
    result = await task.result()
    size = result_size(result)
    assert size <= BUDGET + NOTE_ALLOWANCE
    data = result.structured_content
    assert data is not None
    assert data["status"] == "ok"
    assert data["stdout"].startswith("HEAD")
    assert data["stdout"].rstrip("\n").endswith("TAIL")
    (uri,) = [link for link in links(result) if "run_script-" in link]
    whole = json.loads(await read_link(client, uri))
    assert len(whole["stdout"]) == 60_009


async def test_read_file_links_the_file_itself(client: Client[Any], workspace: Path) -> None:
    body = "".join(f"line {i}\n" for i in range(20_000))
    (workspace / "big.txt").write_text(body)
    result = await client.call_tool_mcp("read_file", {"path": "big.txt"})
    assert result_size(result) <= BUDGET + NOTE_ALLOWANCE
    assert links(result) == ["workspace://big.txt"]
    data = result.structured_content
    assert data is not None
    assert data["content"].startswith("line 0\n")
    assert data["content"].endswith("line 19999\n")
    assert await read_link(client, "workspace://big.txt") == body
    assert not list((workspace / "outputs").glob("read_file-*"))  # nothing copied


async def test_many_items_are_shortened_keeping_first_and_last(tmp_path: Path) -> None:
    workspace = Workspace(WorkspaceConfig(tmp_path, tmp_path / "state", 1 << 20))
    (tmp_path / "outputs").mkdir()
    budget = ResultBudget(8_000, OutputFiles(workspace, OutputLimits(1 << 20, 1 << 22)))
    entries = [{"id": i, "code": f"x = {i}"} for i in range(5_000)]
    structured = {"entries": entries, "total": 5_000}
    text = json.dumps(structured)
    fitted = budget.fit(
        ToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
    )
    assert isinstance(fitted.structured_content, dict)
    kept = fitted.structured_content["entries"]
    assert kept[0]["id"] == 0
    assert kept[-1]["id"] == 4_999
    assert 2 <= len(kept) < 5_000
    assert fitted.structured_content["total"] == 5_000
    blocks = [block.model_dump(mode="json") for block in fitted.content]
    wire = json.dumps(
        {"content": blocks, "structuredContent": fitted.structured_content},
        separators=(",", ":"),
    )
    assert len(wire) <= 8_000 + NOTE_ALLOWANCE
    link = fitted.content[-1]
    assert link.type == "resource_link"
    saved = str(link.uri).removeprefix("workspace://")
    assert (tmp_path / saved).read_text() == text


async def test_a_planted_outputs_link_is_not_written_through(
    client: Client[Any], workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    plant = f"import os, shutil\nshutil.rmtree('outputs')\nos.symlink({str(outside)!r}, 'outputs')"
    await client.call_tool_mcp("run_python_code", {"code": plant})
    result = await client.call_tool_mcp("run_python_code", {"code": printing(90_000)})
    assert result_size(result) <= BUDGET + NOTE_ALLOWANCE
    note = texts(result)[-1]
    assert "the whole result could not be saved" in note
    assert links(result) == []
    assert list(outside.iterdir()) == []
    assert (workspace / "outputs").is_symlink()
