"""Pre-started kernels for the default environment, refilled in the background.

``create_session`` takes a kernel that already answered ``kernel_info`` instead of waiting
for a process start, so a new session's first execution costs a round trip. How many
kernels wait, and how many start at once, is ``pool_policy.py``: deep where kernels fork
(a burst of concurrent sessions is served from ready kernels), shallow where each costs
90 MB.

The pool refills as a stream: each kernel taken is replaced as soon as a start slot is
free (``PoolConfig.starts_allowed``: more at once when less than half the depth is ready),
never beyond the depth (ready plus starting). A start waits
until no kernel is starting for a waiting session (in a burst beyond the depth, the
sessions' own kernels get the CPU first), and until each session that took a kernel had
its first call answered (or ``FIRST_CALL_WAIT`` passed): on a small machine a kernel
starting beside that call made it two to three times slower. A session that finds the
pool empty while the pool is starting kernels nobody waits for yet takes the next of
those instead of starting its own (it is further along). Each kernel runs a warm-up
execute (``warm_up.py``) before it is ready: a fresh kernel's first execute costs more
than the next ones.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_factory import KernelFactory
from python_mcp_server.core.sessions.pool_policy import PoolConfig
from python_mcp_server.core.sessions.warm_up import warm_up
from python_mcp_server.infra.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

#: Seconds the pool waits for a taken kernel's first call before starting its successor.
FIRST_CALL_WAIT = 1.0
#: Seconds a started kernel's warm-up (``warm_up.py``) may take before it is handed out.
WARM_UP_TIMEOUT = 10.0


class KernelPool:
    """Keeps up to ``depth`` ready kernels of the default environment."""

    def __init__(self, factory: KernelFactory, config: PoolConfig) -> None:
        self._factory = factory
        self._config = config
        #: Whether the launcher forks the default environment's kernels (once started).
        self._forks = False
        self._started = False
        self._ready: list[KernelClient] = []
        #: The pool's kernel starts under way.
        self._starting: set[asyncio.Task[None]] = set()
        #: Sessions waiting for a kernel the pool is starting.
        self._waiters: collections.deque[asyncio.Future[KernelClient | None]] = collections.deque()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()
        #: The first calls of sessions that took a kernel, before their successors start.
        self._first_calls: list[asyncio.Event] = []
        self._failures = 0
        self.last_error: str | None = None

    def start(self) -> None:
        if self._config.size <= 0 or self._task is not None:
            return
        try:
            forks = self._factory.forks(None)
        except Exception:  # the default environment is not usable yet: no burst depth
            logger.debug("kernel pool: cannot tell whether kernels fork", exc_info=True)
            forks = False
        self._forks, self._started = forks, True
        self._task = asyncio.create_task(self._refill_forever(), name="kernel-pool")

    @property
    def depth(self) -> int:
        """Kernels kept ready (``PoolConfig.depth``): the burst depth only while the default
        environment's kernels do fork (a launcher that forks may start a kernel whole, and
        says why: ``PreloadPolicy.unforked``, cleared when its packages change)."""
        if not self._started:
            return 0
        cheap = self._forks and None not in self._factory.preload.unforked
        return self._config.depth(cheap)

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    @property
    def starting_count(self) -> int:
        return len(self._starting)

    def take(self) -> KernelClient | None:
        """A ready kernel, or None when the pool is empty."""
        while self._ready:
            client = self._ready.pop(0)
            self._changed()
            if client.is_alive():
                self._first_calls.append(client.executed)
                return client
            self._close_later(client)
        return None

    async def take_or_wait(self) -> KernelClient | None:
        """A ready kernel; else the next kernel the pool finishes starting, when one is
        starting that no other session waits for; else None (the caller starts one)."""
        client = self.take()
        if client is not None or len(self._starting) <= len(self._waiters):
            return client
        waiter: asyncio.Future[KernelClient | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if handed is not None:
                self._close_later(handed)  # handed over as the caller gave up
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def wait_full(self, timeout: float) -> bool:
        """Wait until the pool holds ``depth`` kernels (for benchmarks and tests)."""
        if self._config.size <= 0:
            return True  # no pool: always as full as it gets
        try:
            await asyncio.wait_for(self._full.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _changed(self) -> None:
        depth = self.depth
        while len(self._ready) > depth:  # kernels stopped forking: no 90 MB kernels spare
            self._close_later(self._ready.pop())
        if len(self._ready) >= depth:
            self._full.set()
        else:
            self._full.clear()
        self._wake.set()

    def _room(self) -> bool:
        starting = len(self._starting)
        ready = len(self._ready)
        allowed = self._config.starts_allowed(ready, self.depth)
        return starting < allowed and ready + starting < self.depth

    async def _refill_forever(self) -> None:
        self._changed()
        while not self._closed:
            if not self._room():
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._factory.session_starts_done()
            await self._after_first_calls()
            if self._failures:
                await asyncio.sleep(min(30.0, 0.5 * 2**self._failures))
            if not self._room():
                continue
            task = asyncio.create_task(self._fill_one(), name="kernel-pool-start")
            self._starting.add(task)

    async def _fill_one(self) -> None:
        task = asyncio.current_task()
        started = asyncio.get_running_loop().time()
        try:
            client = await self._start_one()
        except Exception as exc:
            self._failures = min(self._failures + 1, 6)
            self.last_error = str(exc)
            logger.warning("kernel pool could not start a kernel: %s", exc)
            self._hand_over(None)  # a waiting session starts its own kernel
            return
        finally:
            self._starting.discard(task)
            self._changed()
        self._failures = 0
        if self._closed:
            self._close_later(client)
            return
        handed = self._hand_over(client)
        if not handed:
            self._ready.append(client)
        self._changed()
        logger.debug(
            "kernel pool: a kernel was ready %.0f ms after its start began (%s; %d of %d "
            "ready, %d starting)",
            (asyncio.get_running_loop().time() - started) * 1000,
            "handed to a waiting session" if handed else "kept",
            len(self._ready),
            self.depth,
            len(self._starting),
        )

    def _hand_over(self, client: KernelClient | None) -> bool:
        """Give a started kernel (None: a failed start) to the longest waiting session."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            waiter.set_result(client)
            if client is not None:
                self._first_calls.append(client.executed)
            return True
        return False

    async def _after_first_calls(self) -> None:
        calls, self._first_calls = self._first_calls, []
        calls = [call for call in calls if not call.is_set()]
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
            ending = self._close_later(client)
            await asyncio.wait([ending])  # goes on, and aclose waits for it, if cancelled again
            raise
        return client

    async def renew(self) -> None:
        """The default environment changed: end the kernels ready or being started (they
        hold its old imports); the pool refills with fresh ones, and a session waiting for
        a start gets one of those."""
        starting = list(self._starting)
        for task in starting:
            task.cancel()
        if starting:  # each closes the kernel it was starting
            await asyncio.gather(*starting, return_exceptions=True)
        stale, self._ready = self._ready, []
        for client in stale:
            self._close_later(client)
        self._changed()

    def _close_later(self, client: KernelClient) -> asyncio.Task[None]:
        task = asyncio.create_task(client.close(kill=True))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return task

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            await cancel_and_wait(self._task)
        starting = list(self._starting)
        for task in starting:
            task.cancel()
        if starting:  # each closes the kernel it was starting
            await asyncio.gather(*starting, return_exceptions=True)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        ready, self._ready = self._ready, []
        await asyncio.gather(*(c.close(kill=True) for c in ready), return_exceptions=True)
        while self._closing:  # kernels dropped dead, or started for the pool as it closed
            await asyncio.wait(list(self._closing))
