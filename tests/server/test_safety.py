"""check_code_safety and MCP_SAFETY_MODE around run_python_code, over the MCP protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import call, run, tool_error

UNSAFE = "import subprocess\nsubprocess.run(['true'])\nopen('ran.txt', 'w').write('yes')"


async def test_check_code_safety_tool(client: Client[Any]) -> None:
    result = await client.call_tool("check_code_safety", {"code": "import os\nos.system('id')"})
    data = result.structured_content
    assert data is not None
    assert data["is_safe"] is False
    assert data["mode"] == "warn"
    assert "advisory" not in data  # a constant; the tool description says it
    found = next(w for w in data["warnings"] if w["category"] == "dangerous_call")
    assert found == {
        "line": 2,
        "col": 0,
        "category": "dangerous_call",
        "message": "os.system() runs a shell command",
        "severity": "high",
    }
    safe = await call(client, "check_code_safety", code="sum(range(10))")
    assert (safe["is_safe"], safe["warnings"]) == (True, [])


async def test_check_code_safety_rejects_empty_code(client: Client[Any]) -> None:
    assert (await tool_error(client, "check_code_safety", {"code": "  "})).startswith(
        "INVALID_INPUT:"
    )


async def test_tool_is_tagged_safety(client: Client[Any]) -> None:
    tools = {tool.name: tool for tool in await client.list_tools()}
    meta = tools["check_code_safety"].meta or {}
    assert meta.get("fastmcp", {}).get("tags") == ["safety"]


async def test_warn_mode_adds_warnings_and_still_runs(client: Client[Any], workspace: Path) -> None:
    result = await run(client, UNSAFE)
    assert result["status"] == "ok"
    assert (workspace / "ran.txt").read_text() == "yes"
    # Only high findings reach the result: the call, not the ordinary import.
    assert {w["category"] for w in result["warnings"]} == {"dangerous_call"}
    assert {w["severity"] for w in result["warnings"]} == {"high"}
    quiet = await run(client, "1 + 1")
    assert quiet["warnings"] == []
    # The same code again (its report remembered, not parsed again) warns the same.
    again = await run(client, UNSAFE)
    assert again["warnings"] == result["warnings"]
    assert (await run(client, "1 + 1"))["warnings"] == []


async def test_ordinary_imports_draw_no_warning(client: Client[Any]) -> None:
    raw = await client.call_tool("run_python_code", {"code": "import os, sys, shutil\nos.getcwd()"})
    assert raw.structured_content is not None
    assert "warnings" not in raw.structured_content
    assert "safety" not in raw.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("settings_overrides", [{"safety_mode": "off"}])
async def test_off_mode_adds_nothing(client: Client[Any]) -> None:
    result = await run(client, UNSAFE)
    assert result["status"] == "ok"
    assert result["warnings"] == []


@pytest.mark.parametrize("settings_overrides", [{"safety_mode": "block"}])
async def test_block_mode_refuses_unsafe_code(client: Client[Any], workspace: Path) -> None:
    error = await tool_error(client, "run_python_code", {"code": UNSAFE})
    assert error.startswith("UNSAFE_CODE:")
    assert "line 2: subprocess.run() starts a process" in error
    assert not (workspace / "ran.txt").exists()
    refused = await tool_error(client, "run_python_code", {"code": UNSAFE, "allow_unsafe": True})
    assert refused.startswith("UNSAFE_CODE:")
    assert "MCP_ALLOW_UNSAFE" in refused
    assert not (workspace / "ran.txt").exists()
    # Safe code still runs, and its low findings stay out of the result.
    ok = await run(client, "import os\nos.path.basename('a/b')")
    assert ok["result"] == "'b'"
    assert ok["warnings"] == []


@pytest.mark.parametrize("settings_overrides", [{"safety_mode": "block", "allow_unsafe": True}])
async def test_block_mode_lets_allow_unsafe_through_when_permitted(
    client: Client[Any], workspace: Path
) -> None:
    assert (await tool_error(client, "run_python_code", {"code": UNSAFE})).startswith(
        "UNSAFE_CODE:"
    )
    result = await run(client, UNSAFE, allow_unsafe=True)
    assert result["status"] == "ok"
    assert (workspace / "ran.txt").read_text() == "yes"
    assert any(w["severity"] == "high" for w in result["warnings"])


def test_allow_unsafe_is_read_under_the_compatibility_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from python_mcp_server.settings import Settings

    monkeypatch.setenv("PYTHON_EXECUTOR_ALLOW_UNSAFE", "true")
    monkeypatch.setenv("MCP_SAFETY_MODE", "block")
    settings = Settings(workspace_dir=tmp_path)
    assert settings.allow_unsafe is True
    assert settings.safety_mode == "block"


@pytest.mark.parametrize("settings_overrides", [{"safety_mode": "block", "allow_unsafe": True}])
async def test_block_mode_refuses_a_flagged_script(client: Client[Any], workspace: Path) -> None:
    script = "import subprocess\nopen('ran.txt', 'w').write('yes')\nsubprocess.run(['true'])\n"
    await call(client, "save_script", name="flagged", content=script)
    for mode in ("subprocess", "kernel"):
        text = await tool_error(client, "run_script", {"path": "scripts/flagged.py", "mode": mode})
        assert text.startswith("UNSAFE_CODE:")
        assert "MCP_SAFETY_MODE=block" in text
    assert not (workspace / "ran.txt").exists()
    await call(client, "save_script", name="plain", content="print('fine')")
    assert (await call(client, "run_script", path="scripts/plain.py"))["stdout"] == "fine\n"
