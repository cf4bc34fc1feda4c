"""Session tools through the in-memory MCP client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastmcp import Client

from tests.helpers import SWALLOWS_INTERRUPTS, call, run, tool_error, wait_gone


async def sessions_by_id(client: Client[Any]) -> dict[str, dict[str, Any]]:
    listing = await client.call_tool("list_sessions", {})
    assert listing.structured_content is not None
    return {s["session_id"]: s for s in listing.structured_content["sessions"]}


async def test_create_list_and_isolate_sessions(client: Client[Any]) -> None:
    created = await client.call_tool(
        "create_session", {"session_id": "analysis", "description": "numbers"}
    )
    assert created.structured_content is not None
    assert created.structured_content["action"] == "created"
    await run(client, "v = 'analysis'", session_id="analysis")
    await run(client, "v = 'default'")
    assert (await run(client, "v", session_id="analysis"))["result"] == "'analysis'"
    assert (await run(client, "v"))["result"] == "'default'"
    listed = await sessions_by_id(client)
    assert set(listed) == {"analysis", "default"}
    info = listed["analysis"]
    assert info["description"] == "numbers"
    assert info["status"] == "idle"
    assert info["execution_count"] == 2
    assert psutil.pid_exists(info["kernel_pid"])
    assert listed["default"]["active"] is True
    assert info["created_at"] <= info["last_used"]


async def test_switch_session_changes_the_default(client: Client[Any]) -> None:
    await client.call_tool("create_session", {"session_id": "other"})
    await run(client, "where = 'other'", session_id="other")
    switched = await client.call_tool("switch_session", {"session_id": "other"})
    assert switched.structured_content is not None
    assert switched.structured_content["session"]["active"] is True
    assert (await run(client, "where"))["result"] == "'other'"
    listing = await client.call_tool("list_sessions", {})
    assert listing.structured_content is not None
    assert listing.structured_content["active_session_id"] == "other"


async def test_delete_session_ends_its_kernel(client: Client[Any]) -> None:
    await client.call_tool("create_session", {"session_id": "doomed"})
    pid = (await sessions_by_id(client))["doomed"]["kernel_pid"]
    await client.call_tool("delete_session", {"session_id": "doomed"})
    assert not wait_gone({pid})
    text = await tool_error(client, "run_python_code", {"code": "1", "session_id": "doomed"})
    assert text.startswith("SESSION_NOT_FOUND:")


async def test_restart_kernel_clears_variables(client: Client[Any]) -> None:
    await run(client, "gone = 1")
    old_pid = (await sessions_by_id(client))["default"]["kernel_pid"]
    restarted = await client.call_tool("restart_kernel", {})
    assert restarted.structured_content is not None
    assert restarted.structured_content["action"] == "restarted"
    assert (await run(client, "'gone' in dir()"))["result"] == "False"
    assert not wait_gone({old_pid})
    assert (await sessions_by_id(client))["default"]["restarts"] == 1


async def test_interrupt_kernel_when_idle_says_so(client: Client[Any]) -> None:
    await run(client, "1")
    result = await client.call_tool("interrupt_kernel", {})
    assert result.structured_content is not None
    assert result.structured_content["message"] == "nothing was running"
    assert result.structured_content["action"] == "nothing_running"


@pytest.mark.parametrize("bad", ["", "../x", "a b", "x" * 65, "-lead"])
async def test_invalid_session_ids_are_refused(client: Client[Any], bad: str) -> None:
    text = await tool_error(client, "create_session", {"session_id": bad})
    assert text.startswith("INVALID_INPUT:")


async def test_duplicate_session_is_refused(client: Client[Any]) -> None:
    await client.call_tool("create_session", {"session_id": "twice"})
    text = await tool_error(client, "create_session", {"session_id": "twice"})
    assert text.startswith("SESSION_EXISTS:")


@pytest.mark.parametrize("settings_overrides", [{"max_sessions": 2}])
async def test_session_limit(client: Client[Any]) -> None:
    await client.call_tool("create_session", {"session_id": "one"})
    await client.call_tool("create_session", {"session_id": "two"})
    text = await tool_error(client, "create_session", {"session_id": "three"})
    assert text.startswith("SESSION_LIMIT:")
    assert "MCP_MAX_SESSIONS" in text


async def test_unknown_session_for_control_tools(client: Client[Any]) -> None:
    for tool in ("restart_kernel", "interrupt_kernel", "switch_session", "delete_session"):
        text = await tool_error(client, tool, {"session_id": "nobody"})
        assert text.startswith("SESSION_NOT_FOUND:"), tool


async def test_ping(client: Client[Any]) -> None:
    pong = await client.call_tool("ping", {})
    assert pong.structured_content is not None
    assert pong.structured_content["pong"] is True
    assert pong.structured_content["version"]


async def test_interrupt_kernel_says_interrupted_only_when_the_code_stopped(
    client: Client[Any], workspace: Path
) -> None:
    await run(client, "kept = 'yes'")
    code = "import time\nopen('started', 'w').close()\nwhile True: time.sleep(0.05)"
    running = asyncio.create_task(run(client, code))
    await wait_until((workspace / "started").exists)
    result = await call(client, "interrupt_kernel")
    assert result["action"] == "interrupted"
    data = await running
    assert data["error"]["ename"] == "KeyboardInterrupt"
    assert (await run(client, "kept"))["result"] == "'yes'"


async def test_interrupt_kernel_restarts_code_that_ignores_it(
    client: Client[Any], workspace: Path
) -> None:
    await run(client, "lost = 1")
    code = "open('started', 'w').close()\n" + SWALLOWS_INTERRUPTS
    running = asyncio.create_task(run(client, code, timeout=60))
    await wait_until((workspace / "started").exists)
    result = await call(client, "interrupt_kernel")
    assert result["action"] == "restarted"
    assert "variables are lost" in result["message"]
    data = await running
    assert data["kernel_restarted"] is True
    assert (await run(client, "'lost' in dir()"))["result"] == "False"


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")
