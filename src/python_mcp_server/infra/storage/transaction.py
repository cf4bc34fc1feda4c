"""What a unit of database work receives: one open transaction, on a worker thread.

Work functions are plain synchronous functions ``work(tx) -> result``; the backend runs
them off the event loop, inside one transaction that commits when the function returns
and rolls back when it raises. SQL is written once, in the subset both backends speak:
``?`` placeholders (the PostgreSQL backend turns them into ``%s``), ``TEXT``/``INTEGER``
columns, ``INSERT ... ON CONFLICT (...) DO NOTHING``, ``LIMIT``/``OFFSET``, ``RETURNING``.
Where the dialects differ (column types in ``CREATE TABLE``, locks), look at
``Database.dialect`` or give a migration both spellings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Transaction(Protocol):
    """One open transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the rows it changed (-1 when not known)."""
        ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query; return every row."""
        ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run one query; return its first row, if any."""
        ...
