"""The cell store: each session's executions as notebook cells, kept in SQLite.

Cells are filed under the session manager's key of a session (its owner and id), so two
principals' sessions of one name never share a notebook. Every finished execution becomes
one code cell holding its source, execution count and
nbformat outputs; events that are not code (a kernel replaced, a restart asked for) become
markdown notes in the same sequence. The store lives in the server's state folder, so an
export after a server restart still holds what ran. It keeps at most ``max_cells`` cells per
session (the oldest go first), at most ``max_cell_bytes`` of outputs per cell, and at most
``max_total_bytes`` of outputs in all (checked every ``trim_every`` appends; the oldest
cells of any session go first).

When the server's database is SQLite too, the cells file is attached to its connection and
appends go through its write queue: the cell, history and audit records of one execution are
queued together and written in one transaction on one hop to the database thread, at once
(nothing waits to join them). Reads and deletes use the store's own connection, after
what is queued is written. With PostgreSQL, the store writes on its own thread.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from python_mcp_server.infra.storage.database import Database
from python_mcp_server.infra.storage.retention import keep_newest, keep_newest_params
from python_mcp_server.infra.storage.sqlite import SqliteDatabase
from python_mcp_server.infra.storage.sqlite_backend import SqliteBackend
from python_mcp_server.infra.storage.transaction import Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    execution_count INTEGER,
    outputs TEXT NOT NULL DEFAULT '[]',
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cells_by_session ON cells (session_id, id);
"""

CellKind = Literal["code", "note"]

#: The name the cells file has on the server database's connection.
ATTACHED = "notebook_cells"

_INSERT = (
    "INSERT INTO {table} (session_id, kind, source, execution_count, outputs, created) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
#: The session's cells past the newest ``keep``, found through the (session_id, id) index,
#: not by comparing every cell of the session (see infra/storage/retention.py).
_KEEP_NEWEST = keep_newest("{table}", "session_id = ?")
#: The newest cell past which all outputs together exceed the budget.
_OVER_BUDGET = (
    "SELECT id FROM (SELECT id, SUM(length(outputs)) OVER (ORDER BY id DESC) AS kept "
    "FROM {table}) WHERE kept > ? ORDER BY id DESC LIMIT 1"
)


@dataclass(frozen=True)
class CellStoreConfig:
    """Where the cells live and how many are kept."""

    path: Path
    max_cells: int = 2000
    max_cell_bytes: int = 4 * 1024 * 1024
    #: All sessions' cells together: past it the oldest cells go, whoever they belong to.
    max_total_bytes: int = 256 * 1024 * 1024
    #: Appends between two checks of the total.
    trim_every: int = 50


@dataclass(frozen=True)
class Cell:
    """One recorded cell: code with its nbformat outputs, or a markdown note."""

    kind: CellKind
    source: str
    execution_count: int | None = None
    outputs: tuple[dict[str, Any], ...] = ()
    created: str = ""


def created_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _bounded(outputs: list[dict[str, Any]], max_bytes: int) -> list[dict[str, Any]]:
    """Outputs in order while they fit in ``max_bytes``; a note says what was left out."""
    kept: list[dict[str, Any]] = []
    used = 0
    for index, output in enumerate(outputs):
        size = len(json.dumps(output))
        if used + size > max_bytes:
            left = len(outputs) - index
            kept.append(
                {
                    "output_type": "stream",
                    "name": "stderr",
                    "text": f"[{left} output(s) of this cell were not kept: over "
                    f"{max_bytes} bytes]\n",
                }
            )
            break
        kept.append(output)
        used += size
    return kept


class CellStore:
    """Append and read cells per session, off the event loop (see the module docstring)."""

    def __init__(self, config: CellStoreConfig, database: Database | None = None) -> None:
        self.config = config
        self._db = SqliteDatabase(config.path, SCHEMA)
        #: The server's SQLite database, which writes the cells (None: the store does).
        self._writer = database if isinstance(database, SqliteBackend) else None
        self._appends = 0

    async def open(self) -> None:
        await self._db.open()  # creates the file and its schema
        if self._writer is not None:
            await self._writer.attach(self.config.path, ATTACHED)

    async def aclose(self) -> None:
        await self._db.aclose()

    def append(
        self,
        session_id: str,
        kind: CellKind,
        source: str,
        *,
        execution_count: int | None = None,
        outputs: list[dict[str, Any]] | None = None,
    ) -> None:
        """Queue one cell at the end of the session's sequence (off the response path; a
        later read sees it)."""
        payload = json.dumps(_bounded(outputs or [], self.config.max_cell_bytes))
        row = (session_id, kind, source, execution_count, payload, created_now())
        keep = keep_newest_params(self.config.max_cells, (session_id,))
        self._appends += 1
        trim = self._appends % self.config.trim_every == 0
        writer = self._writer
        if writer is not None:
            table = f"{ATTACHED}.cells"

            def write(tx: Transaction) -> None:
                tx.execute(_INSERT.format(table=table), row)
                tx.execute(_KEEP_NEWEST.format(table=table), keep)
                if trim:
                    self._trim(tx.fetchone, tx.execute, table)

            writer.enqueue(write)
            return

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")  # one transaction, one commit
            try:
                connection.execute(_INSERT.format(table="cells"), row)
                connection.execute(_KEEP_NEWEST.format(table="cells"), keep)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        self._db.submit(insert)
        if trim:
            self._db.submit(
                lambda c: self._trim(
                    lambda sql, params: c.execute(sql, params).fetchone(), c.execute, "cells"
                )
            )

    def _trim(self, fetchone: Any, execute: Any, table: str) -> None:
        """Delete the oldest cells while all outputs together exceed the budget."""
        row = fetchone(_OVER_BUDGET.format(table=table), (self.config.max_total_bytes,))
        if row is not None:
            execute(f"DELETE FROM {table} WHERE id <= ?", (row[0],))

    async def _written(self) -> None:
        """Wait until the cells queued so far are written (read after them)."""
        if self._writer is not None:
            await self._writer.flush()

    async def cells(self, session_id: str) -> list[Cell]:
        """The session's cells, oldest first."""

        def select(connection: sqlite3.Connection) -> list[Cell]:
            rows = connection.execute(
                "SELECT kind, source, execution_count, outputs, created FROM cells "
                "WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
            return [
                Cell(
                    kind="note" if kind == "note" else "code",
                    source=source,
                    execution_count=count,
                    outputs=tuple(json.loads(outputs)),
                    created=created,
                )
                for kind, source, count, outputs, created in rows
            ]

        await self._written()
        return await self._db.run(select)

    async def forget(self, session_id: str) -> int:
        """Drop a session's cells; returns how many."""

        def delete(connection: sqlite3.Connection) -> int:
            cursor = connection.execute("DELETE FROM cells WHERE session_id = ?", (session_id,))
            return cursor.rowcount

        await self._written()
        return await self._db.run(delete)
