"""MCP_MAX_CONCURRENT_EXECUTIONS bounds executions running at once across sessions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import run

CELL = "import time\nstart = time.time()\ntime.sleep(0.6)\n(start, time.time())"


async def intervals(client: Client[Any]) -> list[tuple[float, float]]:
    for name in ("p", "q"):
        await client.call_tool("create_session", {"session_id": name})
    results = await asyncio.gather(*(run(client, CELL, session_id=name) for name in ("p", "q")))
    spans = []
    for result in results:
        start, end = result["result"].strip("()").split(", ")
        spans.append((float(start), float(end)))
    return sorted(spans)


@pytest.mark.parametrize("settings_overrides", [{"max_concurrent_executions": 1}])
async def test_limit_of_one_runs_sessions_one_after_another(client: Client[Any]) -> None:
    first, second = await intervals(client)
    assert second[0] >= first[1]


@pytest.mark.parametrize("settings_overrides", [{"max_concurrent_executions": 2}])
async def test_limit_of_two_lets_them_overlap(client: Client[Any]) -> None:
    first, second = await intervals(client)
    assert second[0] < first[1]
