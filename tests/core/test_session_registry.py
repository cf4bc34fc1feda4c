"""The session registry on both backends: one claim wins, stale claims, use, isolation.

Several ``SessionRegistry`` values on one database stand for replicas: each has its own
connection (pool), as separate servers would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import pytest

from python_mcp_server.core.sessions.registry import RegistryConfig, SessionRegistry
from python_mcp_server.infra.storage.database import Database
from python_mcp_server.infra.storage.factory import DatabaseConfig, make_database

Replica = Callable[..., SessionRegistry]


@pytest.fixture(params=["sqlite", "postgresql"])
async def replica(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replica]:
    """Makes registries (one database connection each) on one shared database."""
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    config = DatabaseConfig(url=url, sqlite_path=tmp_path / "state" / "db.sqlite3")
    opened: list[Database] = []

    def make(scope: str = "ns", **settings: float) -> SessionRegistry:
        database = make_database(config)
        opened.append(database)
        return SessionRegistry(database, scope, RegistryConfig(**settings))

    yield make
    for database in opened:
        await database.aclose()


async def opened(registry: SessionRegistry) -> SessionRegistry:
    await registry.database.open()
    await registry.open()
    return registry


async def claim(registry: SessionRegistry, session_id: str, owner: str = "alice") -> bool:
    result = await registry.claim(
        owner, session_id, kernel_id=f"k-{session_id}", environment=None, description="d"
    )
    return result.won


async def test_one_of_many_simultaneous_claims_wins(replica: Replica) -> None:
    registries = [await opened(replica()) for _ in range(4)]
    for n in range(5):
        won = await asyncio.gather(*(claim(r, f"s{n}") for r in registries))
        assert won.count(True) == 1, won
    records = await registries[0].records("alice")
    assert [(r.session_id, r.state) for r in records] == [(f"s{n}", "creating") for n in range(5)]


async def test_a_confirmed_claim_is_ready_and_a_dropped_one_frees_the_id(
    replica: Replica,
) -> None:
    a, b = await opened(replica()), await opened(replica())
    first = await a.claim("alice", "x", kernel_id="k1", environment="data", description="d")
    assert first.won
    assert await a.confirm(first)
    record = await b.get("alice", "x")
    assert record is not None
    assert (record.state, record.kernel_id, record.environment) == ("ready", "k1", "data")
    assert not await claim(b, "x")
    assert await b.drop(record)
    assert not await a.drop(record)  # only that very row, once
    assert await claim(b, "x")


async def test_a_session_deleted_while_it_starts_is_not_confirmed(replica: Replica) -> None:
    a, b = await opened(replica()), await opened(replica())
    started = await a.claim("alice", "x", kernel_id="k", environment=None, description="")
    assert await b.remove("alice", "x")
    assert not await a.confirm(started)
    assert await a.get("alice", "x") is None


async def test_a_stale_claim_is_taken_over_once(replica: Replica) -> None:
    dead = await opened(replica())
    assert await claim(dead, "x")
    others = [await opened(replica(claim_timeout=60)) for _ in range(3)]
    assert not await claim(others[0], "x")  # young: the other replica is still starting it
    # The claim's replica died long ago (its start never confirmed):
    await dead.database.transaction(
        lambda tx: tx.execute("UPDATE session_registry SET claimed_at = '2000-01-01T00:00:00'")
    )
    won = await asyncio.gather(*(claim(r, "x") for r in others))
    assert won.count(True) == 1, won


async def test_principals_and_scopes_are_apart(replica: Replica) -> None:
    here, other_scope = await opened(replica("ns")), await opened(replica("other"))
    assert await claim(here, "work", owner="alice")
    assert await claim(here, "work", owner="bob")
    assert await claim(other_scope, "work", owner="alice")
    assert [r.owner for r in await here.records("alice")] == ["alice"]
    assert [r.owner for r in await here.records("bob")] == ["bob"]
    assert await here.remove("alice", "work")
    assert await other_scope.get("alice", "work") is not None
    assert await here.get("bob", "work") is not None


async def test_uses_are_coalesced_and_written_off_the_call(replica: Replica) -> None:
    a = await opened(replica(touch_interval=0.05))
    started = await a.claim("alice", "x", kernel_id="k", environment=None, description="")
    await a.confirm(started)
    created = started.record.last_used
    for _ in range(50):
        a.touch("alice", "x")  # never waits for the database
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    last_used: datetime = created
    while last_used == created:
        assert loop.time() < deadline, "the use was never written"
        await asyncio.sleep(0.05)
        record = await a.get("alice", "x")
        assert record is not None
        last_used = record.last_used
    assert last_used > created
    assert record.created_at == started.record.created_at
