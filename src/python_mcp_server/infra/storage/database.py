"""The storage seam: ``Database``, one small async interface over SQLite and PostgreSQL.

A store (history, audit, the session registry, ...) receives the server's one
``Database`` and uses four calls:

- ``await db.migrate(component, MIGRATIONS)`` once in its ``open``: creates or upgrades
  its tables (see ``migrations.py``), under a lock so replicas migrate once;
- ``await db.transaction(work)``: runs ``work(tx)`` (see ``transaction.py``) in one
  transaction off the event loop and returns its result; use it for reads and for writes
  the caller must see succeed (clearing history, claiming a session);
- ``await db.fetch(sql, params)``: a one-query shorthand of ``transaction``;
- ``db.enqueue(work)``: a write off the response path (see ``write_queue.py``); it must
  be idempotent (a unique key and ``ON CONFLICT DO NOTHING``), since a write whose commit
  was not acknowledged is retried.

``transaction`` and ``fetch`` first wait for this process's earlier queued writes, so a
read sees them. When the database cannot be reached they raise
``DatabaseUnavailableError`` (code ``DATABASE_UNAVAILABLE``); other failures raise
``StorageError``. ``dialect`` says which backend it is, for the few statements that must
differ. A new backend subclasses ``Database`` and implements ``_connect``, ``_run`` and
``_disconnect``; ``open_database`` (``factory.py``) picks one from the URL.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from python_mcp_server.errors import StorageError
from python_mcp_server.infra.storage.migrations import Dialect, Migration, apply_migrations
from python_mcp_server.infra.storage.transaction import Transaction
from python_mcp_server.infra.storage.write_queue import WriteQueue
from python_mcp_server.infra.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Transaction], T]

#: Seconds ``aclose`` waits for queued writes before giving them up.
CLOSE_FLUSH_SECONDS = 5.0


class Database(ABC):
    """One database (a file, or a server reached through a pool) with a write queue."""

    dialect: Dialect

    def __init__(self, display: str, *, queue_limit: int = 10_000) -> None:
        #: How logs and errors name the database (a path, or the URL without its password).
        self.display = display
        self._queue: WriteQueue[Work[object]] = WriteQueue(queue_limit, display)
        self._writer: asyncio.Task[None] | None = None

    # --- the backend's part -------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None:
        """Reach the database; raise ``DatabaseUnavailableError`` when it cannot be."""

    @abstractmethod
    async def _run(self, work: Work[T], *, lock_schema: bool = False) -> T:
        """Run ``work`` in one transaction off the loop (``lock_schema``: holding the
        cross-process schema lock)."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close connections; idempotent."""

    # --- the interface --------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        """Connect and start the writer; idempotent."""
        if self._writer is not None:
            return
        await self._connect()
        self._writer = asyncio.create_task(
            self._queue.drain(self._apply_batch), name=f"database writer {self.display}"
        )
        # Should the writer ever end early, readers waiting on it must not wait forever.
        self._writer.add_done_callback(lambda _task: self._queue.close())

    async def aclose(self, flush_seconds: float = CLOSE_FLUSH_SECONDS) -> None:
        """Write what is queued (for at most ``flush_seconds``), then disconnect."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.close()
            done, _ = await asyncio.wait({writer}, timeout=flush_seconds)
            if not done:
                await cancel_and_wait(writer)
            elif not writer.cancelled() and writer.exception() is not None:
                raise StorageError(f"database {self.display}: writer failed") from (
                    writer.exception()
                )
            if self._queue:
                self._queue.dropped += len(self._queue)
                logger.warning(
                    "database %s: %d queued write(s) not written at shutdown",
                    self.display,
                    len(self._queue),
                )
        await self._disconnect()

    async def migrate(self, component: str, migrations: Sequence[Migration]) -> list[int]:
        """Bring ``component``'s tables to the newest version; return the versions applied."""

        def work(tx: Transaction) -> list[int]:
            return apply_migrations(tx, self.dialect, component, migrations)

        return await self._run(work, lock_schema=True)

    async def transaction(self, work: Work[T]) -> T:
        """Run ``work(tx)`` in one transaction after this process's queued writes."""
        self._require_open()
        await self._queue.caught_up()
        return await self._run(work)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query."""
        return await self.transaction(lambda tx: tx.fetchall(sql, params))

    def enqueue(self, work: Work[object]) -> None:
        """Queue an idempotent write; never waits."""
        self._require_open()
        self._queue.put(work)

    async def flush(self) -> None:
        """Wait until the writes queued so far are written (or the database is away)."""
        await self._queue.caught_up()

    # --- what health reports ----------------------------------------------------------------
    @property
    def reachable(self) -> bool:
        """False while queued writes wait for the database to come back."""
        return not self._queue.stalled

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def write_failures(self) -> int:
        """Queued writes dropped: failed for good, or pushed out of a full queue."""
        return self._queue.failures + self._queue.dropped

    @property
    def last_write_error(self) -> str | None:
        return self._queue.last_error

    # --- internals --------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._writer is None:
            raise StorageError(f"the database {self.display} is not open")

    async def _apply_batch(self, batch: Sequence[Work[object]]) -> None:
        def work(tx: Transaction) -> None:
            for item in batch:
                item(tx)

        await self._run(work)
