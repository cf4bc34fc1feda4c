"""The cell store keeps a session's cells in order and bounds what it holds, on real SQLite,
writing on its own thread or through the server's SQLite database (one transaction with the
execution's other records)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from python_mcp_server.core.notebooks.cells import CellStore, CellStoreConfig
from python_mcp_server.infra.storage.database import Work
from python_mcp_server.infra.storage.sqlite_backend import SqliteBackend
from python_mcp_server.infra.storage.transaction import Transaction


@pytest.fixture(params=["own thread", "server database"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqliteBackend | None]:
    if request.param == "own thread":
        yield None
        return
    db = SqliteBackend(tmp_path / "state.sqlite3")
    await db.open()
    yield db
    await db.aclose()


def stream(text: str) -> list[dict[str, str]]:
    return [{"output_type": "stream", "name": "stdout", "text": text}]


async def test_cells_come_back_in_order_per_session(
    tmp_path: Path, database: SqliteBackend | None
) -> None:
    store = CellStore(CellStoreConfig(tmp_path / "cells.sqlite3"), database)
    await store.open()
    try:
        store.append("a", "code", "x = 1", execution_count=1, outputs=stream("one"))
        store.append("b", "code", "y = 2", execution_count=1)
        store.append("a", "note", "*Kernel replaced:* test")
        cells = await store.cells("a")
        assert [(c.kind, c.source) for c in cells] == [
            ("code", "x = 1"),
            ("note", "*Kernel replaced:* test"),
        ]
        assert cells[0].outputs[0]["text"] == "one"
        assert [c.source for c in await store.cells("b")] == ["y = 2"]
    finally:
        await store.aclose()


async def test_per_session_count_per_cell_size_and_total_are_bounded(
    tmp_path: Path, database: SqliteBackend | None
) -> None:
    config = CellStoreConfig(
        tmp_path / "cells.sqlite3",
        max_cells=5,
        max_cell_bytes=2000,
        max_total_bytes=20_000,
        trim_every=1,
    )
    store = CellStore(config, database)
    await store.open()
    try:
        for i in range(8):
            store.append("a", "code", f"a{i}")
        assert [c.source for c in await store.cells("a")] == [f"a{i}" for i in range(3, 8)]

        store.append("big", "code", "huge", outputs=stream("x" * 5000) + stream("y"))
        (big,) = await store.cells("big")
        assert len(big.outputs) == 1
        assert "not kept" in big.outputs[0]["text"]

        for i in range(30):  # 30 cells of ~1.1 KB each: past the 20 KB total
            store.append(f"s{i}", "code", "print()", outputs=stream("z" * 1000))
        assert await store.cells("s0") == []  # the oldest went first
        assert len(await store.cells("s29")) == 1
    finally:
        await store.aclose()


async def test_a_cell_shares_the_queue_and_transaction_of_the_other_records(
    tmp_path: Path,
) -> None:
    """Queued in the same turn as a history-like row, a cell goes out with it: one batch,
    one transaction; the store's own reads see it once written."""
    db = SqliteBackend(tmp_path / "state.sqlite3")
    batches: list[int] = []
    apply = db._apply_batch

    async def counted(batch: Sequence[Work[object]]) -> None:
        batches.append(len(batch))
        await apply(batch)

    db._apply_batch = counted  # type: ignore[method-assign]  # the writer applies through it
    await db.open()
    store = CellStore(CellStoreConfig(tmp_path / "cells.sqlite3"), db)
    await store.open()
    try:
        await db.transaction(lambda tx: tx.execute("CREATE TABLE rows (x INTEGER)"))
        batches.clear()
        store.append("a", "code", "x = 1", execution_count=1)

        def row(tx: Transaction) -> None:
            tx.execute("INSERT INTO rows (x) VALUES (1)")

        db.enqueue(row)
        assert db.queued == 2  # nothing was written in between
        assert [c.source for c in await store.cells("a")] == ["x = 1"]
        assert batches == [2]
        assert await db.fetch("SELECT COUNT(*) FROM notebook_cells.cells") == [(1,)]
        assert await store.forget("a") == 1
        assert await store.cells("a") == []
    finally:
        await store.aclose()
        await db.aclose()
