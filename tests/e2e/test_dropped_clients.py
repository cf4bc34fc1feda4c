"""A client whose HTTP connection drops (no cancel notification): its running cell is
interrupted and its queued calls never start. Raw JSON-RPC over httpx, so the test
controls exactly when each connection closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
from fastmcp import Client

from tests.e2e.conftest import StartServer, assert_gone

PROTOCOL = "2025-06-18"  # a revision with sessions: cancellation is a notification there
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
RUNNING = "import time\nstarted = True\ntime.sleep(60)\nfinished = True"


async def open_session(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    reply = await http.post(url, json=init, headers=HEADERS)
    reply.raise_for_status()
    headers = {**HEADERS, "Mcp-Session-Id": reply.headers["mcp-session-id"]}
    headers["Mcp-Protocol-Version"] = PROTOCOL
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    (await http.post(url, json=note, headers=headers)).raise_for_status()
    return headers


def tool_call(call_id: int, code: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": call_id,
        "method": "tools/call",
        "params": {"name": "run_python_code", "arguments": {"code": code, "timeout": 120}},
    }


async def session_state(client: Client[Any]) -> dict[str, Any]:
    listing = (await client.call_tool("list_sessions", {})).structured_content
    assert listing is not None
    return dict(next(s for s in listing["sessions"] if s["session_id"] == "default"))


async def wait_until(client: Client[Any], check: Any, what: str, tries: int = 600) -> None:
    for _ in range(tries):
        if check(await session_state(client)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {what}: {await session_state(client)}")


async def test_dropped_callers_stop_their_calls(start_server: StartServer) -> None:
    server = start_server()
    async with Client(server.mcp_url, auth=server.token) as watcher:
        await watcher.call_tool("run_python_code", {"code": "ran = []"})
        async with contextlib.AsyncExitStack() as streams:
            http = await streams.enter_async_context(
                httpx.AsyncClient(timeout=120, headers=server.headers)
            )
            headers = await open_session(http, server.mcp_url)
            calls = [tool_call(1, RUNNING)]
            calls += [tool_call(2 + i, f"ran.append({i})") for i in range(3)]
            for number, body in enumerate(calls):
                await streams.enter_async_context(
                    http.stream("POST", server.mcp_url, json=body, headers=headers)
                )
                if number == 0:
                    await wait_until(watcher, lambda s: s.get("status") == "busy", "busy")
            await wait_until(
                watcher, lambda s: s.get("waiting_calls", 0) == 3, "three waiting calls"
            )
        # every connection is closed now, without a notifications/cancelled
        await wait_until(
            watcher,
            lambda s: s.get("status") == "idle" and s.get("waiting_calls", 0) == 0,
            "idle again",
        )
        data = (
            await watcher.call_tool(
                "run_python_code", {"code": "('started' in dir(), 'finished' in dir(), ran)"}
            )
        ).structured_content
        assert data is not None
        assert data["result"] == "(True, False, [])", json.dumps(data)
        assert not data.get("kernel_restarted")  # interrupted, not restarted
        pids = server.kernel_pids()
    assert server.stop() == 0, server.log()
    assert_gone(pids)
