"""SessionManager rules that need no protocol: idle reaping and the warm pool."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from python_mcp_server.core.sessions import kernel_pool
from python_mcp_server.core.sessions import warm_up as warm_up_module
from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.server.services import build_services
from python_mcp_server.settings import Settings
from tests.helpers import wait_gone


async def test_idle_sessions_are_reaped(workspace: Path, no_kernel_leak: None) -> None:
    settings = Settings(workspace_dir=workspace, kernel_pool_size=0, session_idle_timeout=0.5)
    services = build_services(settings)
    await services.start()
    try:
        session = await services.sessions.create("sleepy")
        pid = session.kernel_pid
        assert pid is not None
        # The background reaper (period 1 s for this timeout) ends it on its own.
        for _ in range(100):
            if "sleepy" not in services.sessions:
                break
            await asyncio.sleep(0.05)
        assert "sleepy" not in services.sessions
        assert not wait_gone({pid})
    finally:
        await services.aclose()


async def test_pool_makes_new_sessions_ready_at_once(workspace: Path, no_kernel_leak: None) -> None:
    settings = Settings(
        workspace_dir=workspace, kernel_pool_size=1, kernel_pool_burst=0, session_idle_timeout=0
    )
    services = build_services(settings)
    await services.start()
    try:
        assert await services.sessions.pool.wait_full(60)
        pooled_pid = services.sessions.pool._ready[0].kernel.pid
        started = time.perf_counter()
        session = await services.sessions.create("fast")
        outcome = await session.execute("1+1")
        assert outcome.result.result == "2"
        assert session.kernel_pid == pooled_pid
        # The pool refills in the background.
        assert await services.sessions.pool.wait_full(60)
        assert services.sessions.pool._ready[0].kernel.pid != pooled_pid
        assert time.perf_counter() - started > 0
    finally:
        await services.aclose()


#: What a session's first cell sees of the kernel before it: execution count, inputs,
#: outputs, the warm-up's expression name, and the output it was not sent.
FIRST_CELL_VIEW = (
    "ip = get_ipython(); print([ip.execution_count, len(In), len(Out), "
    "'warm_up' in globals(), len(ip.history_manager.input_hist_raw)])"
)


async def test_a_pooled_kernels_warm_up_leaves_no_trace(
    workspace: Path, no_kernel_leak: None
) -> None:
    """The pool's warm-up execute (warm_up.py) ran, but the session's first cell is still
    cell 1 with no input, output or name before it, and nothing of it reaches the call."""
    settings = Settings(
        workspace_dir=workspace, kernel_pool_size=1, kernel_pool_burst=0, session_idle_timeout=0
    )
    services = build_services(settings)
    await services.start()
    try:
        assert await services.sessions.pool.wait_full(120)
        pooled = services.sessions.pool._ready[0]
        assert not pooled.executed.is_set()  # the pool still waits for the first call
        session = await services.sessions.create("warm")
        outcome = await session.execute(FIRST_CELL_VIEW)
        # IPython counts the running cell already: 2 while cell 1 runs, as in a fresh kernel.
        assert outcome.result.stdout == "[2, 2, 0, False, 2]\n"
        assert outcome.result.result is None
        assert outcome.result.execution_count == 1
        assert pooled.executed.is_set()
    finally:
        await services.aclose()


async def test_the_pool_starts_a_successor_after_the_first_call_of_the_session(
    workspace: Path, no_kernel_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_pool, "FIRST_CALL_WAIT", 600.0)  # no fallback in this test
    settings = Settings(
        workspace_dir=workspace,
        kernel_pool_size=1,
        kernel_pool_burst=0,  # one successor to watch
        session_idle_timeout=0,
        sandbox="none",
        kernel_preload="numpy",
    )
    services = build_services(settings)
    await services.start()
    try:
        pool = services.sessions.pool
        assert await pool.wait_full(120)
        factory = services.sessions.factory
        start = factory.start
        answered: list[bool] = []
        first_call = asyncio.Event()

        async def observed(*args: Any, **kwargs: Any) -> KernelClient:
            answered.append(first_call.is_set())
            return await start(*args, **kwargs)

        monkeypatch.setattr(factory, "start", observed)
        session = await services.sessions.create("first")
        first_call = session.client.executed
        assert answered == []  # the successor waits for the session's first call
        outcome = await session.execute("1+1")
        assert outcome.result.result == "2"
        assert await pool.wait_full(120)
        assert answered == [True]
    finally:
        await services.aclose()


async def test_a_kernel_warming_up_when_the_pool_closes_ends_with_it(
    workspace: Path, no_kernel_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing the server while a pooled kernel runs its warm-up leaves no kernel behind
    (the warm-up's wait was cancelled, and the kernel started for the pool was lost)."""
    marker = workspace / "warming"
    # The warm-up's own cell, made to hold the kernel until the server closes.
    monkeypatch.setattr(
        warm_up_module,
        "CODE",
        f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(600)",
    )
    settings = Settings(
        workspace_dir=workspace, kernel_pool_size=1, kernel_pool_burst=0, session_idle_timeout=0
    )
    services = build_services(settings)
    await services.start()
    try:
        for _ in range(1200):  # bounded poll: the kernel writes the file, no event to await
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        assert marker.exists(), "the pooled kernel never started its warm-up"
        assert services.sessions.pool.ready_count == 0
    finally:
        await services.aclose()
