"""Execution history and audit lines through the MCP client, real kernels and SQLite."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.app import build_server
from python_mcp_server.settings import Settings
from tests.helpers import call, kernel_children, run, tool_error, wait_gone


async def history(client: Client[Any], **arguments: Any) -> dict[str, Any]:
    return await call(client, "get_execution_history", **arguments)


async def test_every_execution_is_recorded(client: Client[Any]) -> None:
    ok = await run(client, "import sys\nprint('hello')\nprint('warn', file=sys.stderr)")
    failed = await run(client, "1/0")
    listing = await history(client)
    assert listing["count"] == listing["total"] == 2
    newest, oldest = listing["entries"]
    assert newest["execution_id"] == failed["execution_id"]
    assert newest["status"] == "error"
    assert newest["error"] == "ZeroDivisionError: division by zero"
    assert newest["code"] == "1/0"
    assert oldest["execution_id"] == ok["execution_id"]
    assert oldest["session_id"] == "default"
    assert oldest["stdout"] == "hello\n"
    assert oldest["stderr"] == "warn\n"
    assert oldest["error"] is None
    started = datetime.fromisoformat(oldest["started"])
    finished = datetime.fromisoformat(oldest["finished"])
    assert started <= finished <= datetime.fromisoformat(newest["started"])
    assert isinstance(oldest["duration"], float)


async def test_filters_and_limit(client: Client[Any]) -> None:
    await client.call_tool("create_session", {"session_id": "other"})
    for i in range(3):
        await run(client, f"v = {i}")
    await run(client, "raise ValueError('bad')", session_id="other")
    await run(client, "w = 1", session_id="other")
    assert (await history(client, limit=2))["count"] == 2
    assert (await history(client, limit=2))["total"] == 5
    other = await history(client, session_id="other")
    assert [e["code"] for e in other["entries"]] == ["w = 1", "raise ValueError('bad')"]
    errors = await history(client, status="error")
    assert [e["session_id"] for e in errors["entries"]] == ["other"]
    assert (await history(client, session_id="default", status="error"))["total"] == 0
    text = await tool_error(client, "get_execution_history", {"status": "weird"})
    assert text.startswith("INVALID_INPUT:")
    text = await tool_error(client, "get_execution_history", {"limit": 0})
    assert text.startswith("INVALID_INPUT:")


async def test_clear_history(client: Client[Any]) -> None:
    await client.call_tool("create_session", {"session_id": "other"})
    await run(client, "a = 1")
    await run(client, "b = 1")
    await run(client, "c = 1", session_id="other")
    cleared = await client.call_tool("clear_execution_history", {"session_id": "other"})
    assert cleared.structured_content == {"cleared_count": 1, "session_id": "other"}
    assert (await history(client))["total"] == 2
    cleared = await client.call_tool("clear_execution_history", {})
    assert cleared.structured_content == {"cleared_count": 2}
    assert (await history(client))["entries"] == []


@pytest.mark.parametrize("settings_overrides", [{"max_history": 3}])
async def test_retention_keeps_the_newest(client: Client[Any]) -> None:
    for i in range(5):
        await run(client, f"x = {i}")
    listing = await history(client, limit=100)
    assert [e["code"] for e in listing["entries"]] == ["x = 4", "x = 3", "x = 2"]
    assert listing["max_history"] == 3


async def test_long_output_is_cut_to_an_excerpt(client: Client[Any]) -> None:
    await run(client, "print('y' * 5000)")
    entry = (await history(client))["entries"][0]
    assert entry["stdout"] == "y" * 2000


async def test_history_survives_a_server_restart(settings: Settings) -> None:
    """Two servers, one after the other, on the same workspace and state folder."""
    before = kernel_children()
    async with Client(build_server(settings)) as first:
        done = await run(first, "secret_sauce = 41 + 1")
    async with Client(build_server(settings)) as second:
        await run(second, "'second server'")
        listing = await history(second)
    assert [e["code"] for e in listing["entries"]] == ["'second server'", "secret_sauce = 41 + 1"]
    assert listing["entries"][1]["execution_id"] == done["execution_id"]
    assert not wait_gone(kernel_children() - before)
    database = settings.state_path / "history.sqlite3"
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.stat().st_mode & 0o077 == 0


async def test_one_audit_line_per_execution_without_the_code(
    client: Client[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.audit")
    first = await run(client, "api_key = 'sk-very-secret-value'")
    await run(client, "raise KeyError('sk-very-secret-value')")
    lines = [r for r in caplog.records if r.name == "python_mcp_server.audit"]
    assert len(lines) == 2
    ok, failed = (json.loads(line.getMessage()) for line in lines)
    assert (ok["execution_id"], ok["status"]) == (first["execution_id"], "ok")
    assert (failed["status"], failed["error"]) == ("error", "KeyError")
    for line in lines:
        assert "sk-very-secret-value" not in line.getMessage()
        assert json.loads(line.getMessage())["session_id"] == "default"
        assert line.audit["event"] == "execution"  # type: ignore[attr-defined]
