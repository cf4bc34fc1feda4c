"""Stopping background tasks without swallowing the caller's own cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel the tasks and return once every one has ended.

    The usual ``task.cancel()`` then ``await task`` under ``suppress(CancelledError)``
    cannot tell the task's cancellation from the caller's: a caller cancelled meanwhile
    would carry on as if nothing happened (that once left the idle reaper looping
    forever at shutdown). ``asyncio.wait`` never raises the tasks' outcomes, so a
    CancelledError here is the caller's own and is passed on. What the tasks ended with
    is marked retrieved: they log their own failures where they happen.
    """
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    retrieve_outcomes(tasks)


def retrieve_outcomes(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Mark the outcomes of ended tasks as seen (no "exception never retrieved" noise)."""
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
