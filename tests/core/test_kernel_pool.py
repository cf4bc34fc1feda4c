"""The kernel pool's policy, with real forked kernels: depth by cost, bursts served from
ready kernels, a stream of refills bounded by the depth, hand-over of a kernel being
started, and nothing left when the pool closes mid-refill."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_pool import KernelPool
from python_mcp_server.core.sessions.pool_policy import (
    PoolConfig,
    default_parallel_starts,
    default_urgent_parallel_starts,
)
from python_mcp_server.server.services import Services, build_services
from python_mcp_server.settings import Settings
from tests.helpers import wait_gone

#: Unsandboxed kernels forked from a template that preloads numpy: quick to start.
FORKED: dict[str, Any] = {"sandbox": "none", "kernel_preload": "numpy", "kernel_fork": True}


class StartLog:
    """Every kernel start the factory is asked for, and what the pool held at its entry."""

    def __init__(self, pool: KernelPool, start: Callable[..., Awaitable[KernelClient]]) -> None:
        self.pool = pool
        self._start = start
        self.pooled = 0
        self.for_sessions = 0
        self.most_held = 0  # ready plus starting, this start included
        self.most_running = 0
        self._running = 0
        self.entered = asyncio.Event()
        self.gate: asyncio.Event | None = None  # when set: starts wait for it

    async def __call__(self, *args: Any, **kwargs: Any) -> KernelClient:
        if kwargs.get("pooled"):
            self.pooled += 1
            held = self.pool.ready_count + self.pool.starting_count
            self.most_held = max(self.most_held, held)
        else:
            self.for_sessions += 1
        self._running += 1
        self.most_running = max(self.most_running, self._running)
        self.entered.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            return await self._start(*args, **kwargs)
        finally:
            self._running -= 1


@pytest.fixture
async def forked_services(workspace: Path) -> AsyncIterator[Services]:
    """A pool of 1 kernel, 3 where kernels fork (they do here)."""
    settings = Settings(
        workspace_dir=workspace,
        kernel_pool_size=1,
        kernel_pool_burst=3,
        session_idle_timeout=0,
        **FORKED,
    )
    services = build_services(settings)
    await services.start()
    try:
        yield services
    finally:
        await services.aclose()


def watch_starts(services: Services, monkeypatch: pytest.MonkeyPatch) -> StartLog:
    factory = services.sessions.factory
    log = StartLog(services.sessions.pool, factory.start)
    monkeypatch.setattr(factory, "start", log)
    return log


async def test_the_depth_follows_what_a_kernel_costs(workspace: Path) -> None:
    config = PoolConfig(size=2, burst=10)
    assert config.depth(forks=True) == 10
    assert config.depth(forks=False) == 2
    assert PoolConfig(size=0, burst=10).depth(forks=True) == 0  # 0: no pool at all
    assert PoolConfig(size=4, burst=2).depth(forks=True) == 4
    assert default_parallel_starts(2) == 1
    assert default_parallel_starts(8) == 4
    assert default_parallel_starts(1) == 1
    assert default_urgent_parallel_starts(2) == 2
    starts = PoolConfig(size=1, burst=10, parallel_starts=1, urgent_parallel_starts=2)
    assert starts.starts_allowed(ready=5, depth=10) == 1  # half full: one at a time
    assert starts.starts_allowed(ready=4, depth=10) == 2  # the next sessions would wait

    capped = build_services(Settings(workspace_dir=workspace, max_sessions=4, **FORKED))
    assert capped.sessions.pool._config.burst == 4  # never more than could be taken

    for changed, forks in (
        ({}, True),
        ({"kernel_preload": "none"}, False),
        ({"kernel_fork": False}, False),
    ):
        values = {**FORKED, **changed, "kernel_pool_size": 0}  # no kernel starts here
        services = build_services(Settings(workspace_dir=workspace, **values))
        await services.start()  # the default environment exists from here on
        try:
            assert services.sessions.factory.forks(None) is forks, changed
        finally:
            await services.aclose()


async def test_a_burst_as_deep_as_the_pool_starts_no_kernel_on_its_path(
    no_kernel_leak: None, forked_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = forked_services.sessions
    pool = sessions.pool
    assert pool.depth == 3
    assert await pool.wait_full(120)
    pooled = {client.kernel.pid for client in pool._ready}
    log = watch_starts(forked_services, monkeypatch)
    burst = await asyncio.gather(*(sessions.create(f"b{i}") for i in range(3)))
    assert log.for_sessions == 0
    assert {session.kernel_pid for session in burst} == pooled
    for session in burst:
        assert (await session.execute("1+1")).result.result == "2"
    # The drained pool refills to its depth, one stream of starts that never holds more
    # kernels than the depth nor starts more at once than it may.
    assert await pool.wait_full(120)
    assert pool.ready_count == 3
    assert log.pooled == 3
    assert log.most_held <= pool.depth
    assert log.most_running <= pool._config.urgent_parallel_starts
    assert log.for_sessions == 0


async def test_a_session_takes_the_kernel_the_pool_is_starting(
    no_kernel_leak: None, forked_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session that finds the pool empty while it starts a kernel takes that kernel,
    instead of starting one of its own."""
    sessions = forked_services.sessions
    pool = sessions.pool
    assert await pool.wait_full(120)
    taken = [pool.take() for _ in range(pool.depth)]
    log = watch_starts(forked_services, monkeypatch)
    log.gate = asyncio.Event()
    try:
        for client in taken:
            assert client is not None
            client.executed.set()  # as if each had answered its session's first call
        await log.entered.wait()  # the refill started; its kernel waits for the gate
        creating = asyncio.create_task(sessions.create("late"))
        for _ in range(1000):  # yields only: the session reaches the pool's queue
            if pool._waiters:
                break
            await asyncio.sleep(0)
        assert len(pool._waiters) == 1
        log.gate.set()
        session = await creating
        assert (await session.execute("1+1")).result.result == "2"
        assert log.for_sessions == 0
    finally:
        log.gate.set()
        for client in taken:
            if client is not None:
                await client.close(kill=True)


async def test_closing_the_pool_during_a_refill_leaves_no_kernel(
    workspace: Path, no_kernel_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        workspace_dir=workspace,
        kernel_pool_size=1,
        kernel_pool_burst=2,
        session_idle_timeout=0,
        **FORKED,
    )
    services = build_services(settings)
    await services.start()
    taken: list[KernelClient | None] = []
    try:
        pool = services.sessions.pool
        assert await pool.wait_full(120)
        taken = [pool.take() for _ in range(pool.depth)]
        for client in taken:
            assert client is not None
            client.executed.set()
        log = watch_starts(services, monkeypatch)
        await log.entered.wait()  # a kernel is starting for the pool
        # A session waits for it too: the close ends the kernel being started, or hands
        # it over; either way no kernel outlives the test (no_kernel_leak).
        waiting = asyncio.create_task(pool.take_or_wait())
        for _ in range(1000):
            if pool._waiters:
                break
            await asyncio.sleep(0)
    finally:
        await services.aclose()
        for client in taken:
            if client is not None:
                await client.close(kill=True)
    handed = await waiting  # None, unless the kernel was ready before the close
    if handed is not None:
        await handed.close(kill=True)
    assert services.sessions.pool.starting_count == 0
    assert services.sessions.pool.ready_count == 0


async def test_renewing_the_pool_replaces_its_kernels_ready_or_starting(
    no_kernel_leak: None, forked_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pool does when the default environment changes: no kernel it held, ready
    or being started, reaches a session; each ends."""
    pool = forked_services.sessions.pool
    assert await pool.wait_full(120)
    ready = {client.kernel.pid for client in pool._ready}
    taken = pool.take()
    assert taken is not None
    try:
        taken.executed.set()
        log = watch_starts(forked_services, monkeypatch)
        await log.entered.wait()  # a start is under way as the environment changes
        await pool.renew()
        assert pool.ready_count == 0
        assert await pool.wait_full(120)
        fresh = {client.kernel.pid for client in pool._ready}
        assert not fresh & ready
        assert len(fresh) == pool.depth
        assert not wait_gone(ready - {taken.kernel.pid})
    finally:
        await taken.close(kill=True)


async def test_the_pool_keeps_its_minimum_once_kernels_stop_forking(
    no_kernel_leak: None, forked_services: Services
) -> None:
    """A forking launcher that starts the default environment's kernels whole (its
    template cannot start, ...) says why (``PreloadPolicy.unforked``): the pool then keeps
    ``MCP_KERNEL_POOL_SIZE`` kernels, ending those beyond it, until packages change."""
    pool = forked_services.sessions.pool
    preload = forked_services.sessions.factory.preload
    assert await pool.wait_full(120)
    assert pool.depth == 3
    spare = {client.kernel.pid for client in pool._ready}
    # What a launch sets when it had to start a kernel whole (sandbox_fork.py).
    preload.unforked[None] = "the fork template does not start here"
    taken = pool.take()  # any change of the pool applies the smaller depth
    assert taken is not None
    try:
        assert pool.depth == 1
        assert pool.ready_count == 1
        kept = {client.kernel.pid for client in pool._ready}
        await asyncio.wait(list(pool._closing))  # the spare kernel is being ended
        assert not wait_gone(spare - kept - {taken.kernel.pid})
        await forked_services.sessions.factory.environment_changed()  # packages changed
        assert pool.depth == 3
    finally:
        await taken.close(kill=True)
