"""cancel_and_wait stops tasks and never swallows the caller's own cancellation."""

from __future__ import annotations

import asyncio

from python_mcp_server.infra.tasks import cancel_and_wait


async def test_tasks_are_ended_and_their_failures_do_not_escape() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    sleeper = asyncio.create_task(asyncio.sleep(60))
    failing = asyncio.create_task(fails_when_cancelled())
    await asyncio.sleep(0)
    await cancel_and_wait(sleeper, failing)
    assert sleeper.cancelled()
    assert isinstance(failing.exception(), RuntimeError)
    await cancel_and_wait()  # nothing to stop is fine


async def test_a_caller_cancelled_while_waiting_stays_cancelled() -> None:
    release = asyncio.Event()
    winding_down = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            winding_down.set()
            await release.wait()  # it takes its time to wind down
            raise

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(inner))
    await winding_down.wait()  # the stopper has cancelled the task and waits for it
    assert not stopper.done()
    stopper.cancel()  # e.g. shutdown cancels whoever is stopping the task
    await asyncio.wait([stopper])
    assert stopper.cancelled()
    release.set()
    await asyncio.wait([inner])
    assert inner.cancelled()
