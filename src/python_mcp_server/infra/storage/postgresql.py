"""The shared backend: ``Database`` over PostgreSQL through psycopg 3 and a connection pool.

Work runs on worker threads, each unit on a pooled connection inside one transaction.
Every connection is checked when taken from the pool, so one broken by a database restart
is replaced rather than handed out. A connection failure, a pool with no connection in
``timeout`` seconds, or a server shutting down become ``DatabaseUnavailableError``; other
database errors ``StorageError``. Migrations hold a transaction-scoped advisory lock, so
replicas starting together migrate once. No message or log line carries the password.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import psycopg_pool

from python_mcp_server.errors import DatabaseUnavailableError, StorageError
from python_mcp_server.infra.storage.database import Database, Work
from python_mcp_server.infra.storage.urls import mask_secret, mask_url

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The advisory lock migrations take (any constant shared by every replica: "pmcp").
MIGRATION_LOCK = 0x706D6370
#: Seconds a pool keeps retrying a lost connection before it gives up on that slot (a
#: later request then starts a fresh attempt at once, so recovery never waits long).
RECONNECT_SECONDS = 10.0

#: Errors that mean "not reachable now" (the pool's timeouts are OperationalErrors).
UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)


def _placeholders(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTransaction:
    """``Transaction`` over a psycopg cursor."""

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        if params:
            self._cursor.execute(_placeholders(sql), tuple(params))
        else:
            self._cursor.execute(sql.encode())  # no placeholders: may hold several statements

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._run(sql, params)
        return int(self._cursor.rowcount)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._run(sql, params)
        return list(self._cursor.fetchall())

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._run(sql, params)
        return self._cursor.fetchone()


class PostgresBackend(Database):
    """A PostgreSQL database reached through a pool of ``pool_size`` connections."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        timeout: float = 5.0,
        queue_limit: int = 10_000,
    ) -> None:
        super().__init__(mask_url(url), queue_limit=queue_limit)
        self._url = url
        self._pool_size = max(1, pool_size)
        self._timeout = timeout
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None
        self._threads: ThreadPoolExecutor | None = None

    def _error(self, exc: Exception) -> StorageError:
        text = mask_secret(str(exc).strip().splitlines()[0] if str(exc).strip() else "", self._url)
        message = f"database {self.display}: {text or type(exc).__name__}"
        if isinstance(exc, UNAVAILABLE):
            return DatabaseUnavailableError(message)
        return StorageError(message)

    async def _connect(self) -> None:
        self._threads = ThreadPoolExecutor(
            max_workers=self._pool_size, thread_name_prefix="postgresql"
        )
        try:
            await self._call(self._open_pool)
        except BaseException:
            await self._disconnect()
            raise

    def _open_pool(self) -> None:
        # One plain connection first: its error says why (refused, bad password, no such
        # database), where a pool would only say that it timed out.
        with psycopg.connect(self._url, connect_timeout=max(1, int(self._timeout))):
            pass
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = (
            psycopg_pool.ConnectionPool(
                self._url,
                min_size=1,
                max_size=self._pool_size,
                open=False,
                timeout=self._timeout,
                kwargs={"connect_timeout": max(1, int(self._timeout))},
                check=psycopg_pool.ConnectionPool.check_connection,
                reconnect_timeout=RECONNECT_SECONDS,
                num_workers=2,
                name="python-mcp-server",
            )
        )
        try:
            pool.open(wait=True, timeout=self._timeout)
        except BaseException:
            pool.close()
            raise
        self._pool = pool

    async def _run(self, work: Work[T], *, lock_schema: bool = False) -> T:
        def unit() -> T:
            pool = self._pool
            if pool is None:
                raise StorageError(f"the database {self.display} is closed")
            with pool.connection() as connection, connection.transaction():
                cursor = connection.cursor()
                if lock_schema:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                return work(PostgresTransaction(cursor))

        return await self._call(unit)

    async def _call(self, work: Callable[[], T]) -> T:
        if self._threads is None:
            raise StorageError(f"the database {self.display} is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._threads, work)
        except psycopg.Error as exc:  # the pool's errors are psycopg errors too
            raise self._error(exc) from exc

    async def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        threads, self._threads = self._threads, None
        if pool is not None:
            await asyncio.to_thread(pool.close)
        if threads is not None:
            threads.shutdown(wait=True)
