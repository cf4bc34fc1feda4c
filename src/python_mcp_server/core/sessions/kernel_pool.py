"""Pre-started kernels for the default environment, refilled in the background.

``create_session`` takes a kernel that already answered ``kernel_info`` instead of waiting
for a process start, so a new session's first execution costs a round trip. Every missing
kernel starts at once (a pool of 4 emptied by a burst refills in one start time, not four),
but only once no kernel is starting for a waiting session: in a burst the sessions' own
kernels get the CPU first, and the pool refills right after. Nor does it start a taken
kernel's successor before the session that took it has had its first call answered (or
``FIRST_CALL_WAIT`` passed): on a small machine a kernel starting beside that call made
it two to three times slower. Each kernel runs a warm-up execute (``warm_up.py``) before
it is ready: a fresh kernel's first execute costs more than the next ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_factory import KernelFactory
from python_mcp_server.core.sessions.warm_up import warm_up
from python_mcp_server.infra.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

#: Seconds the pool waits for a taken kernel's first call before starting its successor.
FIRST_CALL_WAIT = 1.0
#: Seconds a started kernel's warm-up (``warm_up.py``) may take before it is handed out.
WARM_UP_TIMEOUT = 10.0


class KernelPool:
    """Keeps up to ``size`` ready kernels of the default environment."""

    def __init__(self, factory: KernelFactory, size: int) -> None:
        self._factory = factory
        self._size = size
        self._ready: list[KernelClient] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()
        #: The first calls of sessions that took a kernel, before their successors start.
        self._first_calls: list[asyncio.Event] = []
        self.last_error: str | None = None

    def start(self) -> None:
        if self._size > 0 and self._task is None:
            self._task = asyncio.create_task(self._refill_forever(), name="kernel-pool")

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    def take(self) -> KernelClient | None:
        """A ready kernel, or None when the pool is empty (the caller starts one)."""
        while self._ready:
            client = self._ready.pop(0)
            self._wake.set()
            if client.is_alive():
                self._first_calls.append(client.executed)
                return client
            task = asyncio.create_task(client.close(kill=True))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._wake.set()
        return None

    async def wait_full(self, timeout: float) -> bool:
        """Wait until the pool holds ``size`` kernels (for benchmarks and tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._ready) < self._size:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _refill_forever(self) -> None:
        failures = 0
        while not self._closed:
            if len(self._ready) >= self._size:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._factory.session_starts_done()
            await self._after_first_calls()
            missing = self._size - len(self._ready)
            started = await asyncio.gather(
                *(self._start_one() for _ in range(missing)), return_exceptions=True
            )
            errors = [e for e in started if isinstance(e, BaseException)]
            for client in started:
                if isinstance(client, KernelClient):
                    if self._closed:
                        await client.close(kill=True)
                    else:
                        self._ready.append(client)
            if not errors:
                failures = 0
                continue
            if any(isinstance(e, asyncio.CancelledError) for e in errors):
                raise asyncio.CancelledError
            failures += 1
            self.last_error = str(errors[0])
            logger.warning("kernel pool could not start a kernel: %s", errors[0])
            await asyncio.sleep(min(30.0, 0.5 * 2**failures))

    async def _after_first_calls(self) -> None:
        calls, self._first_calls = self._first_calls, []
        if calls:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(call.wait() for call in calls)), FIRST_CALL_WAIT
                )

    async def _start_one(self) -> KernelClient:
        client = await self._factory.start(None, "pool", pooled=True)
        try:
            await warm_up(client, WARM_UP_TIMEOUT)  # off the path of the session that takes it
        except BaseException:  # the pool is closing: the kernel started for it ends too
            ending = asyncio.create_task(client.close(kill=True))
            self._closing.add(ending)
            ending.add_done_callback(self._closing.discard)
            await asyncio.wait([ending])  # goes on, and aclose waits for it, if cancelled again
            raise
        return client

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            await cancel_and_wait(self._task)
        ready, self._ready = self._ready, []
        await asyncio.gather(*(c.close(kill=True) for c in ready), return_exceptions=True)
        if self._closing:  # kernels dropped dead, or started for the pool as it closed
            await asyncio.wait(list(self._closing))
