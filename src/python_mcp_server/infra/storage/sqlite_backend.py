"""The embedded backend: ``Database`` over one SQLite file in the state folder.

All work runs on ``SqliteDatabase``'s single thread, each unit inside ``BEGIN IMMEDIATE``
(the file's write lock, which also serialises migrations between processes sharing the
file). A file that predates the migrations (an old ``history.sqlite3``) is upgraded in
place: the first migrations of each component are written to accept tables that exist.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from python_mcp_server.infra.storage.database import Database, Work
from python_mcp_server.infra.storage.sqlite import SqliteDatabase

T = TypeVar("T")


class SqliteTransaction:
    """``Transaction`` over a ``sqlite3`` connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._connection.execute(sql, tuple(params)).rowcount)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._connection.execute(sql, tuple(params)).fetchall()]

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._connection.execute(sql, tuple(params)).fetchone()
        return None if row is None else tuple(row)


def _in_transaction(work: Work[T], connection: sqlite3.Connection) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(SqliteTransaction(connection))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


class SqliteBackend(Database):
    """One SQLite file (WAL), reached from one thread."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, queue_limit: int = 10_000) -> None:
        super().__init__(str(path), queue_limit=queue_limit)
        self.path = path
        self._file = SqliteDatabase(path, "")

    async def _connect(self) -> None:
        await self._file.open()

    async def _run(self, work: Work[T], *, lock_schema: bool = False) -> T:
        return await self._file.run(lambda connection: _in_transaction(work, connection))

    async def _disconnect(self) -> None:
        await self._file.aclose()

    async def attach(self, path: Path, name: str) -> None:
        """Reach another SQLite file's tables as ``<name>.<table>`` in this database's
        transactions (its writes then share their commit). ``name`` is a constant of the
        caller, never outside input; the file keeps its WAL journal, written as lightly
        as this one's (``synchronous=NORMAL``)."""

        def attach(connection: sqlite3.Connection) -> None:
            connection.execute(f"ATTACH DATABASE ? AS {name}", (str(path),))
            connection.execute(f"PRAGMA {name}.synchronous=NORMAL")

        await self._file.run(attach)
