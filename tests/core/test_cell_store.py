"""The cell store keeps a session's cells in order and bounds what it holds, on real SQLite."""

from __future__ import annotations

from pathlib import Path

from python_mcp_server.core.notebooks.cells import CellStore, CellStoreConfig


def stream(text: str) -> list[dict[str, str]]:
    return [{"output_type": "stream", "name": "stdout", "text": text}]


async def test_cells_come_back_in_order_per_session(tmp_path: Path) -> None:
    store = CellStore(CellStoreConfig(tmp_path / "cells.sqlite3"))
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


async def test_per_session_count_per_cell_size_and_total_are_bounded(tmp_path: Path) -> None:
    config = CellStoreConfig(
        tmp_path / "cells.sqlite3",
        max_cells=5,
        max_cell_bytes=2000,
        max_total_bytes=20_000,
        trim_every=1,
    )
    store = CellStore(config)
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
