"""A named session: one live kernel, its variables, and the rules for running code in it.

Executions on one session run one at a time in arrival order (the lifecycle's FIFO lock);
different sessions run in parallel, bounded by a shared semaphore. A timeout interrupts
the kernel and keeps its variables; a kernel that ignores the interrupt, or dies, or is
ended by ``exit()``, is replaced and the result says so. Code that never reached a live
kernel runs on the new one; code that did is never re-run. The state machine (ready, busy,
replacing, closing, closed) and its transitions live in ``lifecycle.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio

from python_mcp_server.core.execution.output_collector import OutputBounds, OutputCollector
from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_requests import Execution
from python_mcp_server.core.sessions.lifecycle import (
    KernelReplacedHook,
    KernelSource,
    Replacement,
    SessionLifecycle,
    SessionState,
)
from python_mcp_server.core.sessions.outcome import (
    EXIT_REASON,
    CallFacts,
    ExecutionOutcome,
    asked_to_exit,
    build_result,
    kernel_died,
    session_closed,
)
from python_mcp_server.core.sessions.owners import DEFAULT_OWNER, session_key
from python_mcp_server.core.workspace.outputs import OutputFiles
from python_mcp_server.errors import (
    KernelDiedError,
    KernelStartError,
    KernelUnresponsiveError,
    SessionClosedError,
)
from python_mcp_server.infra.network.access import NetworkAccess
from python_mcp_server.models.execution import ExecutionErrorInfo
from python_mcp_server.models.sessions import SessionStatus

logger = logging.getLogger(__name__)

#: Called while code runs: (seconds elapsed, recent output).
ProgressCallback = Callable[[float, str], Awaitable[None]]

PROGRESS_INTERVAL = 0.5
CANCEL_RESTART_REASON = "a cancelled call did not stop on interrupt, so the kernel was restarted"

T = TypeVar("T")

__all__ = [
    "ExecutionConfig",
    "ExecutionOutcome",
    "KernelReplacedHook",
    "KernelSession",
    "KernelSource",
    "ProgressCallback",
]


@dataclass(frozen=True)
class ExecutionConfig:
    """Execution rules shared by every session."""

    #: Where outputs are saved (outputs/, through the workspace resolver, capped).
    outputs: OutputFiles
    default_timeout: float
    interrupt_grace: float
    #: How much output a result carries.
    output_bounds: OutputBounds


def _now() -> datetime:
    return datetime.now(timezone.utc)


class KernelSession:
    """A user-visible session backed by one kernel at a time."""

    def __init__(
        self,
        session_id: str,
        client: KernelClient,
        *,
        config: ExecutionConfig,
        semaphore: asyncio.Semaphore,
        kernel_source: KernelSource,
        description: str = "",
        venv_name: str | None = None,
        on_replaced: KernelReplacedHook | None = None,
        owner: str = DEFAULT_OWNER,
    ) -> None:
        self.session_id = session_id
        #: The principal the session belongs to (see core/sessions/owners.py).
        self.owner = owner
        self.description = description
        self.venv_name = venv_name
        #: The session's own network access (narrower than the server's); None: the server's.
        self.network: NetworkAccess | None = None
        self.created_at = _now()
        self.last_used = self.created_at
        self.last_used_monotonic = time.monotonic()
        #: Called on each use (the session registry's last-used time); None: nothing.
        self.on_used: Callable[[], None] | None = None
        self.execution_count = 0
        self.last_error: str | None = None
        self._config = config
        self._semaphore = semaphore
        self._running = 0
        self.lifecycle = SessionLifecycle(
            self, client, kernel_source=kernel_source, on_replaced=on_replaced
        )

    # --- state -------------------------------------------------------------------------
    @property
    def client(self) -> KernelClient:
        return self.lifecycle.client

    @property
    def status(self) -> SessionStatus:
        return self.lifecycle.status()

    @property
    def closed(self) -> bool:
        """Closing or closed: nothing new starts in this session."""
        return self.lifecycle.closing

    @property
    def restart_count(self) -> int:
        return self.lifecycle.restart_count

    @property
    def busy(self) -> bool:
        """Whether executions run or wait in this session."""
        return self._running > 0

    @property
    def running_elsewhere(self) -> bool:
        """Code another server started runs in this session's shared kernel (its IOPub
        status, which every connected client sees, says busy)."""
        return self.client.kernel.shared and self.client.execution_state == "busy"

    @property
    def callers(self) -> int:
        """Executions running or waiting in this session."""
        return self._running

    @property
    def waiting_calls(self) -> int:
        """Executions waiting for the session (behind a running one)."""
        return max(0, self._running - (self.lifecycle.state is SessionState.BUSY))

    @property
    def held(self) -> bool:
        """Whether an execution, replacement or snapshot holds the session right now."""
        return self.lifecycle.lock.locked()

    @property
    def key(self) -> str:
        """The session manager's key: owner and id."""
        return session_key(self.owner, self.session_id)

    @property
    def kernel_pid(self) -> int | None:
        return self.client.kernel.pid

    def touch(self) -> None:
        self.last_used = _now()
        self.last_used_monotonic = time.monotonic()
        if self.on_used is not None:
            self.on_used()

    # --- execution -------------------------------------------------------------------
    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        input_data: list[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ExecutionOutcome:
        """Run code and return its outcome; Python errors are outcomes, not exceptions.

        SESSION_CLOSED (raised) when the session closes before the code starts.
        """
        self.touch()
        self._running += 1
        try:
            async with self.lifecycle.hold(busy=True), self._semaphore:
                return await self._run(
                    code, timeout or self._config.default_timeout, input_data, progress
                )
        finally:
            self._running -= 1
            self.touch()

    async def _run(
        self,
        code: str,
        timeout: float,
        input_data: list[str] | None,
        progress: ProgressCallback | None,
    ) -> ExecutionOutcome:
        execution_id = uuid.uuid4().hex[:12]
        collector = OutputCollector(
            execution_id=execution_id,
            files=self._config.outputs,
            bounds=self._config.output_bounds,
            owner=self,
        )
        feeder = _InputFeeder(input_data)
        facts = CallFacts(replacements=self.lifecycle.take_unreported())
        started = time.perf_counter()
        # The progress task starts when the first report is due: most calls end before,
        # and then cost a timer instead of a task.
        heartbeat = (
            _Heartbeat(lambda: self._heartbeat(progress, collector, started))
            if progress is not None
            else None
        )
        try:
            await self._attempt(code, timeout, collector, feeder, facts)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            collected = collector.finish()
        facts.input_exhausted = feeder.exhausted
        self.execution_count += 1
        result = build_result(
            facts,
            collected,
            session_id=self.session_id,
            execution_id=execution_id,
            elapsed=time.perf_counter() - started,
        )
        if result.error is not None:
            self.last_error = f"{result.error.ename}: {result.error.evalue}"
        return ExecutionOutcome(result=result, collected=collected)

    async def _attempt(
        self,
        code: str,
        timeout: float,
        collector: OutputCollector,
        feeder: _InputFeeder,
        facts: CallFacts,
    ) -> None:
        """Run the code on a live kernel and record what happened; never raises for a
        kernel that died, would not start, or a session that closed."""
        try:
            await self._send_and_wait(code, timeout, collector, feeder, facts)
        except SessionClosedError:
            facts.status, facts.failure = "error", session_closed(self._close_reason())
        except KernelStartError as exc:
            facts.code_ran, facts.status = False, "error"
            facts.failure = ExecutionErrorInfo(
                ename="KernelStartFailed",
                evalue=f"the session's kernel had ended and a new one could not be started: "
                f"{exc.message}",
                code="KERNEL_START_FAILED",
            )

    async def _send_and_wait(
        self,
        code: str,
        timeout: float,
        collector: OutputCollector,
        feeder: _InputFeeder,
        facts: CallFacts,
    ) -> None:
        for _ in range(2):  # the second try only when the first never reached a kernel
            facts.code_ran = False
            try:
                if not self.client.is_alive():
                    await self._replace_before_run(facts)
                execution = self.client.start_execute(
                    code, on_iopub=collector.handle, on_stdin=feeder
                )
            except KernelDiedError:
                continue  # died between the check and the send: replace, then send again
            # Sent: it may run, so it is never sent again (a death before the kernel said
            # it began cannot be told from code that killed the kernel at once).
            facts.code_ran = True
            try:
                await self._wait(execution, timeout, facts)
            except KernelDiedError as exc:
                if self.closed:
                    raise SessionClosedError(exc.message) from None
                facts.status, facts.failure = "error", kernel_died(exc.message)
                facts.message = "the kernel died and was restarted"
                facts.restarted_here = True
                await self._replace_into(facts, exc.message)
            return
        facts.status = "error"
        facts.failure = kernel_died("no kernel stayed alive long enough to run the code")

    async def _wait(self, execution: Execution, timeout: float, facts: CallFacts) -> None:
        try:
            facts.reply = await execution.wait(timeout)
        except asyncio.TimeoutError:
            facts.status = "timeout"
            facts.message = f"execution exceeded {timeout:g} s and was interrupted"
            if await self._interrupt_or_restart(execution, facts):
                facts.message += (
                    "; the kernel did not stop within the grace period and was restarted"
                )
            else:
                facts.message += "; the session keeps its variables"
            return
        except asyncio.CancelledError:
            # The caller cancelled the call (or is gone): stop the code, keep the session.
            with anyio.CancelScope(shield=True):
                if await self._interrupt_or_restart(execution, facts, CANCEL_RESTART_REASON):
                    logger.warning("session %s: %s", self.session_id, CANCEL_RESTART_REASON)
                    # nobody reads this call's result: the next call is told instead
                    self.lifecycle.unreported[:0] = facts.replacements
            raise
        if asked_to_exit(facts.reply) and not self.closed:
            with contextlib.suppress(asyncio.TimeoutError):  # it exits on its own
                await asyncio.wait_for(self.client.wait_exit(), 2.0)
            facts.message = "exit() ends the kernel, so the session's kernel was restarted at once"
            facts.restarted_here = True
            await self._replace_into(facts, EXIT_REASON, requested=True)

    async def _replace_before_run(self, facts: CallFacts) -> None:
        facts.replacements.append(await self._replace(await self.client.exit_reason()))

    async def _replace_into(
        self, facts: CallFacts, reason: str, *, requested: bool = False
    ) -> None:
        try:
            facts.replacements.append(await self._replace(reason, requested=requested))
        except SessionClosedError:
            facts.status, facts.failure = "error", session_closed(self._close_reason())

    async def _replace(self, reason: str, *, requested: bool = False) -> Replacement:
        self.last_error = reason
        return await self.lifecycle.replace(reason, requested=requested)

    def _close_reason(self) -> str:
        return self.lifecycle.close_reason or "the session was closed"

    async def _heartbeat(
        self, progress: ProgressCallback, collector: OutputCollector, started: float
    ) -> None:
        """Report now (the first interval has passed), then every interval."""
        seen = -1
        with contextlib.suppress(Exception):
            while True:
                elapsed = time.perf_counter() - started
                tail = collector.tail() if collector.activity != seen else ""
                seen = collector.activity
                await progress(elapsed, tail)
                await asyncio.sleep(PROGRESS_INTERVAL)

    async def _interrupt_or_restart(
        self,
        execution: Execution,
        facts: CallFacts,
        ignored: str = "the kernel ignored an interrupt",
    ) -> bool:
        """Interrupt; if the kernel is not idle within the grace period, restart it.

        Returns True when the kernel was restarted.
        """
        try:
            await execution.client.interrupt()
            await execution.wait(self._config.interrupt_grace)
            return False
        except asyncio.TimeoutError:
            execution.cancel()
            reason = ignored
        except KernelDiedError as exc:
            reason = exc.message
        if self.closed:
            return False
        facts.restarted_here = True
        await self._replace_into(facts, reason)
        return True

    # --- control ---------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the session: executions and restarts wait until the block ends.

        SESSION_CLOSED when the session closes first."""
        async with self.lifecycle.hold(busy=False):
            yield

    async def replace_kernel(self, reason: str, *, requested: bool) -> None:
        """Replace the kernel now; the caller holds ``exclusive()``.

        ``requested=False`` (a dead or hung kernel nobody waits on) runs the
        after-replacement hooks and tells the next execution about it.
        """
        self.last_error = reason if not requested else self.last_error
        if requested:
            await self.lifecycle.replace(reason, requested=True)
        else:
            await self.lifecycle.replace_unreported(reason)

    async def held_request(
        self, use: Callable[[KernelClient], Awaitable[T]], *, timeout: float
    ) -> T:
        """Use the kernel's shell channel for a request, never beside a cell, within
        ``timeout`` (see ``SessionLifecycle.shell_request``); KERNEL_UNRESPONSIVE after it.

        While a cell runs, the request waits for it here rather than in the kernel's queue,
        so an interrupt aimed at the cell can never land in it and lose its reply.
        """

        async def admitted() -> T:
            async with self.lifecycle.shell_request() as client:
                return await use(client)

        try:
            return await asyncio.wait_for(admitted(), timeout)
        except asyncio.TimeoutError as exc:
            raise KernelUnresponsiveError(
                f"the kernel did not answer within {timeout:g} s"
                + (" (code was running in the session)" if self.busy else "")
            ) from exc

    async def restart(self) -> None:
        """Replace the kernel with a fresh one; waits for a running execution first."""
        async with self.exclusive():
            await self.lifecycle.replace("restart requested", requested=True)

    async def close(self, *, kill: bool = True, reason: str = "the session was deleted") -> None:
        """End the session (``kill=False``: only detach from a shared kernel)."""
        await self.lifecycle.close(kill=kill, reason=reason)


class _Heartbeat:
    """A progress loop started ``PROGRESS_INTERVAL`` from now, unless cancelled first."""

    def __init__(self, beat: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._beat = beat
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(PROGRESS_INTERVAL, self._start)

    def _start(self) -> None:
        self._task = asyncio.create_task(self._beat())

    def cancel(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()


class _InputFeeder:
    """Answers input() requests from the given lines, then with EOF."""

    def __init__(self, lines: list[str] | None) -> None:
        self._lines = list(lines or [])
        self.exhausted = False

    def __call__(self, _request: Mapping[str, Any]) -> str:
        if self._lines:
            return self._lines.pop(0)
        self.exhausted = True
        return "\x04"
