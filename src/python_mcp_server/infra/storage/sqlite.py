"""A SQLite file used from one dedicated thread, so the event loop never blocks on disk.

Every statement runs on a single worker thread that owns the connection (stdlib
``sqlite3``, WAL journal, ``synchronous=NORMAL``): writes are serialised without locks in
Python, readers in other processes still see consistent data, and ``sqlite3`` errors leave
this module as ``StorageError``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from python_mcp_server.errors import StorageError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SqliteDatabase:
    """One database file with a schema, reached through ``run``."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._executor is not None

    async def open(self) -> None:
        """Create the file and schema if needed; idempotent."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        try:
            await self._call(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(self._schema)
        except BaseException:
            connection.close()
            raise
        self.path.chmod(0o600)
        self._connection = connection

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the database thread and return its result."""
        return await self._call(functools.partial(self._with_connection, work))

    def submit(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``work(connection)`` without waiting for it.

        The single database thread runs work in submission order, so a later ``run`` sees
        it done, and ``aclose`` finishes every queued write before closing. A failure is
        logged, since no caller is waiting to hear of it.
        """
        if self._executor is None:
            raise StorageError(f"the database {self.path.name} is not open")
        future = self._executor.submit(self._with_connection, work)
        future.add_done_callback(self._log_failure)

    def _log_failure(self, future: Future[object]) -> None:
        error = future.exception()
        if error is not None:
            logger.warning("database %s: a queued write failed: %s", self.path.name, error)

    def _with_connection(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            raise StorageError("the database is closed")
        return work(self._connection)

    async def _call(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise StorageError(f"the database {self.path.name} is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work)
        except sqlite3.Error as exc:
            raise StorageError(f"database {self.path.name}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection and stop the thread; idempotent."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._close_connection)
        finally:
            executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
