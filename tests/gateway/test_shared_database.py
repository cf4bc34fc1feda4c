"""Replicas on one gateway sharing one PostgreSQL: one history and one audit trail."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastmcp import Client

from tests.gateway.conftest import Replicas
from tests.helpers import call, run

#: What these tests prove is the shared store, not the gateway: they run on Kernel Gateway
#: only (the gateway behaviours run on both gateways in the other tests/gateway files).
pytestmark = pytest.mark.parametrize("gateway", ["kernel-gateway"], indirect=True)


async def history_until(
    client: Client[Any], done: Callable[[list[str]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """The history listing once ``done(execution ids)`` holds (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = await call(client, "get_execution_history")
        ids = [entry["execution_id"] for entry in listing["entries"]]
        if done(ids) or time.monotonic() > deadline:
            assert done(ids), ids
            return listing
        await asyncio.sleep(0.05)


def audit_rows(url: str) -> list[dict[str, object]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT record FROM audit ORDER BY id").fetchall()
    return [json.loads(row[0]) for row in rows]


async def test_history_and_audit_are_the_same_through_every_replica(
    replicas: Replicas, postgres_url: str
) -> None:
    a = await replicas.open(database_url=postgres_url)
    b = await replicas.open(database_url=postgres_url)
    through_a = await run(a, "6 * 7")
    assert through_a["result"] == "42"
    through_b = await run(b, "print('from b')")

    expected = [through_b["execution_id"], through_a["execution_id"]]
    for client in (a, b):
        # A replica reads its own writes at once; another's once its queue wrote them.
        listing = await history_until(client, lambda ids: ids == expected)
        assert listing["entries"][1]["code"] == "6 * 7"

    # Each execution is audited once, whichever replica ran it (and never with its code).
    executions = [r for r in audit_rows(postgres_url) if r["event"] == "execution"]
    assert sorted(r["execution_id"] for r in executions) == sorted(
        [through_a["execution_id"], through_b["execution_id"]]
    )
    assert all(r["principal"] == "default" and "code" not in r for r in executions)

    cleared = await call(b, "clear_execution_history")
    assert cleared["cleared_count"] == 2
    assert (await call(a, "get_execution_history"))["entries"] == []
