"""Writes queued off the response path: bounded, in order, kept while the database is away.

``WriteQueue.put`` is called on the event loop and never waits. One writer task
(``drain``) applies the queued writes in order, in batches, each batch in one transaction.
When the database is unreachable (``DatabaseUnavailableError``) the batch stays at the head
and is retried with a growing pause until it goes through, so nothing is lost while the
queue has room; past ``limit`` the oldest write is dropped and counted. Any other failure
(a full disk, a broken row, a bug in a write function) drops the writes concerned, found
one by one, with a log line and a count, so one bad write never blocks the rest.

Retrying a batch whose commit did land (the connection broke before the answer came back)
would write it twice, so every queued write must be idempotent: insert with a unique key
and ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from python_mcp_server.errors import DatabaseUnavailableError, StorageError

logger = logging.getLogger(__name__)

W = TypeVar("W")

#: Writes applied in one transaction.
BATCH = 200
#: Pauses between retries while the database is unreachable, seconds.
FIRST_PAUSE = 0.1
LAST_PAUSE = 2.0


class WriteQueue(Generic[W]):
    """A bounded FIFO of writes and the bookkeeping of what has been written."""

    def __init__(self, limit: int, name: str) -> None:
        self.limit = max(1, limit)
        self.name = name
        self._items: deque[tuple[int, W]] = deque()
        self._queued = 0  # sequence number of the newest write queued
        self._done = 0  # every write up to this sequence number is written or dropped
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._closing = False
        #: The database could not be reached on the last attempt.
        self.stalled = False
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: W) -> None:
        """Queue one write (the oldest is dropped when the queue is full)."""
        if len(self._items) >= self.limit:
            seq, _ = self._items.popleft()
            self._finished(seq)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "database %s: the write queue is full (%d); %d write(s) dropped so far",
                    self.name,
                    self.limit,
                    self.dropped,
                )
        self._queued += 1
        self._items.append((self._queued, item))
        self._wake.set()

    async def caught_up(self) -> None:
        """Return when every write queued before this call is written, or the database is
        found unreachable (a read then says so itself)."""
        target = self._queued
        while self._done < target and not self.stalled and not self._closing:
            self._progress.clear()
            await self._progress.wait()

    def _finished(self, seq: int) -> None:
        self._done = max(self._done, seq)
        self._progress.set()

    async def drain(self, apply: Callable[[Sequence[W]], Awaitable[None]]) -> None:
        """The writer: apply queued writes until ``close``; runs as one task."""
        pause = FIRST_PAUSE
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [item for _, item in list(self._items)[:BATCH]]
            last_seq = self._items[len(batch) - 1][0]
            try:
                await apply(batch)
            except DatabaseUnavailableError as exc:
                self._stall(exc)
                if self._closing:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), pause)
                except asyncio.TimeoutError:
                    pass
                pause = min(pause * 2, LAST_PAUSE)
                continue
            except Exception:  # a StorageError, or a bug in one write: find it, drop it
                if not await self._one_by_one(apply, len(batch)):
                    continue
            else:
                self._pop_through(last_seq)
            if self.stalled:
                logger.warning("database %s is back; queued writes resumed", self.name)
            self.stalled = False
            pause = FIRST_PAUSE
            self._finished(last_seq)

    async def _one_by_one(self, apply: Callable[[Sequence[W]], Awaitable[None]], n: int) -> bool:
        """Apply ``n`` head writes singly, dropping those that fail; False if the database
        went away meanwhile (the rest stay queued)."""
        for _ in range(n):
            if not self._items:
                break
            seq, item = self._items[0]
            try:
                await apply([item])
            except DatabaseUnavailableError as exc:
                self._stall(exc)
                return False
            except Exception as exc:
                self.failures += 1
                self.last_error = exc.message if isinstance(exc, StorageError) else repr(exc)
                logger.warning("database %s: a queued write failed: %s", self.name, exc)
            self._pop_through(seq)
            self._finished(seq)
        return True

    def _pop_through(self, seq: int) -> None:
        """Forget written writes (``put`` may have dropped some of them meanwhile)."""
        while self._items and self._items[0][0] <= seq:
            self._items.popleft()

    def _stall(self, exc: DatabaseUnavailableError) -> None:
        if not self.stalled:
            logger.warning(
                "database %s unreachable; %d write(s) kept until it returns: %s",
                self.name,
                len(self._items),
                exc.message,
            )
        self.stalled = True
        self.last_error = exc.message
        self._progress.set()

    def close(self) -> None:
        """Let the writer end once the queue is empty (or at its next failure)."""
        self._closing = True
        self._wake.set()
        self._progress.set()
