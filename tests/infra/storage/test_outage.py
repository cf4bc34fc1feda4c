"""The write queue across a real PostgreSQL stop and start: bounded, kept, written once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from python_mcp_server.errors import DatabaseUnavailableError
from python_mcp_server.infra.storage.postgresql import PostgresBackend
from tests.infra.storage.test_database import ITEMS, insert
from tests.services.postgres import PostgresServer


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_writes_wait_out_an_outage_bounded_and_land_once(
    own_postgres: PostgresServer,
) -> None:
    db = PostgresBackend(own_postgres.url, timeout=1.0, queue_limit=5)
    await db.open()
    try:
        await db.migrate("items", ITEMS)
        db.enqueue(insert("before"))
        await db.flush()

        own_postgres.stop()
        for index in range(8):
            db.enqueue(insert(f"during-{index}"))
        await until(lambda: not db.reachable)
        with pytest.raises(DatabaseUnavailableError) as raised:
            await db.fetch("SELECT key FROM items")
        assert own_postgres.password not in str(raised.value)
        assert "***" in str(raised.value)
        assert db.queued == 5  # the three oldest were pushed out, and counted
        assert db.write_failures == 3

        own_postgres.start()
        await until(lambda: db.queued == 0 and db.reachable)
        keys = [row[0] for row in await db.fetch("SELECT key FROM items ORDER BY id")]
        assert keys == ["before", *(f"during-{index}" for index in range(3, 8))]
    finally:
        await db.aclose()
