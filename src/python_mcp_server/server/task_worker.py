"""The in-memory task worker runs only while a task may exist.

Docket's worker keeps its infrastructure loops going whether or not there is work: its
cancellation listener reads its pub/sub channel ten times a second (Docket's in-memory
backend, BurnerRedis, reads through a worker thread), its scheduler looks for due tasks
four times a second and its heartbeat runs every two seconds. On an idle server that was
most of the process's wake-ups.

With the in-memory task store, every task of this server is made by this server, and
only through two doors of the tasks extension: a ``tools/call`` run as a task and a
``tasks/update`` that starts a task's next leg. ``Demand`` is told after each
(``ProjectTasks`` in ``server/tasks.py``), and ``OnDemandWorker.run_forever`` answers
with Docket's public ``Worker.run_until_finished``, which returns once no task is
queued, scheduled or running. A task made while a run ends wakes the next run, so none
is left waiting. A shared store (Redis) keeps Docket's always-running worker: there,
other replicas make tasks and hand over the tasks of replicas that stopped.

fastmcp-tasks builds the worker itself (``fastmcp_tasks.lifespan.docket_lifespan``
constructs ``docket.Worker`` and runs its ``run_forever``) and offers no option to run
it on demand or to choose its class. ``on_demand_worker`` is therefore this server's one
monkeypatch: while the extension's lifespan starts, and only then, ``docket.Worker``
names ``OnDemandWorker``; the server that asked is found through a context variable, so
a worker built for anyone else in that moment is a plain Docket worker. It is checked
against the versions it was written for (``PINNED``): with others the swap is skipped,
a warning says so, and the library's always-running worker is used (tasks work, the
idle cost comes back); tests/server/test_tasks.py fails until it is checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import docket
from docket import Worker

log = logging.getLogger(__name__)

#: The distributions whose code the swap relies on, at the versions it was checked with.
PINNED = (("fastmcp-tasks", "4.1.4"), ("pydocket", "0.27.2"))


class Demand:
    """Whether the worker may have work, and whether it is running.

    ``wake`` after a task may have been made; ``close`` when the server stops.
    """

    def __init__(self) -> None:
        self._wanted = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = False
        #: Set by the worker when it is built: the on-demand worker is in use.
        self.attached = False

    def wake(self) -> None:
        self._wanted.set()

    def close(self) -> None:
        self.closed = True
        self._wanted.set()

    @property
    def running(self) -> bool:
        """Whether the worker is running now (its listener and loops are up)."""
        return not self._idle.is_set()

    async def wait_idle(self) -> None:
        """Until the worker is not running."""
        await self._idle.wait()

    async def next_run(self) -> bool:
        """Wait until a run is wanted; False once closed."""
        await self._wanted.wait()
        self._wanted.clear()
        if self.closed:
            return False
        self._idle.clear()
        return True

    def run_ended(self) -> None:
        self._idle.set()


#: The demand of the server whose extension lifespan is starting (read by the worker).
_starting: ContextVar[Demand | None] = ContextVar("python_mcp_server_task_demand", default=None)


class OnDemandWorker(Worker):
    """A Docket worker whose ``run_forever`` runs only while there may be work."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.demand = _starting.get()
        if self.demand is not None:
            self.demand.attached = True

    async def run_forever(self) -> None:
        demand = self.demand
        if demand is None:  # built for someone else while the swap was in place
            await super().run_forever()
            return
        task = asyncio.current_task()
        # Docket's loop ends quietly when cancelled; the server closes ``demand`` before
        # it cancels the worker, and Python 3.11+ also counts the cancellation.
        cancelling = getattr(task, "cancelling", lambda: 0)
        while await demand.next_run():
            try:
                await self.run_until_finished()
            finally:
                demand.run_ended()
            if cancelling():
                raise asyncio.CancelledError


def pinned_versions_match() -> bool:
    """Whether the installed fastmcp-tasks and pydocket are the ones the swap was checked with."""
    for name, expected in PINNED:
        try:
            found = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found = None
        if found != expected:
            log.warning(
                "%s %s is installed; the on-demand task worker was checked with %s, so the "
                "task worker runs all the time (idle CPU)",
                name,
                found,
                expected,
            )
            return False
    return True


@contextlib.contextmanager
def on_demand_worker(demand: Demand) -> Iterator[None]:
    """While this block runs, a Docket worker built in this context runs on ``demand``."""
    if not pinned_versions_match():
        yield
        return
    token = _starting.set(demand)
    docket.Worker = OnDemandWorker  # type: ignore[misc]
    try:
        yield
    finally:
        docket.Worker = Worker  # type: ignore[misc]
        _starting.reset(token)
