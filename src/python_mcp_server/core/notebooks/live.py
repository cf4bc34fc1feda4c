"""The live feed: events of each session's notebook, fanned out to whoever watches it.

A watcher (the browser view's event stream) subscribes to one session and gets every event
published after it subscribed: a cell starting, a cell finished with its outputs, a note,
the session ending. Each watcher has a bounded queue; a watcher too slow to keep up loses
its oldest events and is told so by a ``lagged`` event, so a stalled browser never holds
server memory or slows an execution.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

Event = dict[str, Any]

#: Events one watcher may have waiting before the oldest are dropped.
QUEUE_EVENTS = 256


class LiveFeed:
    """Publish-subscribe of notebook events, per session id."""

    def __init__(self, queue_events: int = QUEUE_EVENTS) -> None:
        self._queue_events = queue_events
        self._watchers: dict[str, set[asyncio.Queue[Event]]] = {}
        #: Number of the newest event published (events carry it as ``seq``).
        self.seq = 0

    def watching(self, session_id: str) -> int:
        return len(self._watchers.get(session_id, ()))

    def publish(self, session_id: str, event: Event) -> None:
        """Hand the event to every watcher of the session; never blocks."""
        self.seq += 1
        event = {**event, "seq": self.seq}
        for queue in self._watchers.get(session_id, ()):
            delivered = event
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                delivered = {**event, "lagged": True}
            queue.put_nowait(delivered)

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue of the session's events for as long as the block runs."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_events)
        self._watchers.setdefault(session_id, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(session_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[session_id]
