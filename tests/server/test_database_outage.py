"""PostgreSQL stopped and started again under a running server (pg_ctl, for real).

While it is down, code still runs, history reads and clearing fail with
DATABASE_UNAVAILABLE, and health says so; the records of what ran meanwhile wait in the
queue and, once it is back, are written each exactly once, with no restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from fastmcp import Client

from tests.helpers import call, run, tool_error
from tests.services.postgres import PostgresServer


@pytest.fixture
def settings_overrides(own_postgres: PostgresServer) -> dict[str, Any]:
    return {"database_url": own_postgres.url, "database_timeout": 2.0}


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


async def history_when_back(client: Client[Any], want: int, timeout: float = 90.0) -> Any:
    """The history listing once the database answers and holds ``want`` entries."""
    deadline = time.monotonic() + timeout
    while True:
        result = await client.call_tool(
            "get_execution_history", {"limit": 50}, raise_on_error=False
        )
        if not result.is_error and result.structured_content is not None:
            if result.structured_content["total"] >= want:
                return result.structured_content
        else:
            assert result.content[0].text.startswith("DATABASE_UNAVAILABLE:")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "history never came back"
        await asyncio.sleep(0.2)


async def test_executions_run_through_an_outage_and_are_recorded_once_after(
    client: Client[Any], own_postgres: PostgresServer
) -> None:
    before = await run(client, "1 + 1")
    assert (await call(client, "get_execution_history"))["total"] == 1

    own_postgres.stop()
    during = [await run(client, f"x = {n}\nprint(x)") for n in range(3)]
    assert [d["stdout"] for d in during] == ["0\n", "1\n", "2\n"]

    text = await tool_error(client, "get_execution_history", {})
    assert text.startswith("DATABASE_UNAVAILABLE:"), text
    assert own_postgres.password not in text
    text = await tool_error(client, "clear_execution_history", {})
    assert text.startswith("DATABASE_UNAVAILABLE:"), text
    health = await call(client, "health_check")
    problems = " | ".join(health["problems"])
    assert "the history database does not answer: database postgresql://pmcp:***@" in problems
    assert "record(s) wait to be written" in problems, problems
    assert own_postgres.password not in problems
    assert (await run(client, "x"))["result"] == "2"  # the kernel never noticed

    own_postgres.start()
    listing = await history_when_back(client, want=5)
    ids = [before["execution_id"], *(d["execution_id"] for d in during)]
    assert {entry["execution_id"] for entry in listing["entries"]} >= set(ids)

    url = own_postgres.url
    history = Counter(row[0] for row in rows(url, "SELECT execution_id FROM executions"))
    assert all(history[i] == 1 for i in ids), history
    audit = Counter(
        row[0] for row in rows(url, "SELECT execution_id FROM audit WHERE event = 'execution'")
    )
    assert all(audit[i] == 1 for i in ids), audit
    cleared = await call(client, "clear_execution_history")
    assert cleared["cleared_count"] == listing["total"]
