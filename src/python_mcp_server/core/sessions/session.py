"""A named session: one live kernel, its variables, and the rules for running code in it.

Executions on one session run one at a time in arrival order (``asyncio.Lock`` is FIFO);
different sessions run in parallel, bounded by a shared semaphore. A timeout interrupts
the kernel and keeps its variables; a kernel that ignores the interrupt, or dies, is
replaced and the result says so. User code is never re-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import anyio

from python_mcp_server.core.execution.output_collector import (
    CollectedOutput,
    OutputBounds,
    OutputCollector,
)
from python_mcp_server.core.sessions.kernel_client import Execution, KernelClient
from python_mcp_server.core.sessions.owners import DEFAULT_OWNER, session_key
from python_mcp_server.core.workspace.outputs import OutputFiles
from python_mcp_server.errors import KernelDiedError
from python_mcp_server.infra.network.access import NetworkAccess
from python_mcp_server.models.execution import ExecutionErrorInfo, ExecutionResult

logger = logging.getLogger(__name__)

#: Called while code runs: (seconds elapsed, recent output).
ProgressCallback = Callable[[float, str], Awaitable[None]]
#: Supplies a fresh kernel for this session (pool or new start).
KernelSource = Callable[["KernelSession"], Awaitable[KernelClient]]
#: Called after a kernel that died or hung was replaced (not after a requested restart),
#: with the session (already on its new kernel) and the reason; e.g. restores a snapshot.
KernelReplacedHook = Callable[["KernelSession", str], Awaitable[None]]

PROGRESS_INTERVAL = 0.5
CANCEL_RESTART_NOTICE = (
    "a cancelled call did not stop on interrupt, so the kernel was restarted and "
    "its variables were lost"
)


@dataclass(frozen=True)
class ExecutionConfig:
    """Execution rules shared by every session."""

    #: Where outputs are saved (outputs/, through the workspace resolver, capped).
    outputs: OutputFiles
    default_timeout: float
    interrupt_grace: float
    #: How much output a result carries.
    output_bounds: OutputBounds


@dataclass
class ExecutionOutcome:
    """A finished execution: the wire result plus the images to attach as content."""

    result: ExecutionResult
    collected: CollectedOutput


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
        self.client = client
        self.created_at = _now()
        self.last_used = self.created_at
        self.last_used_monotonic = time.monotonic()
        self.execution_count = 0
        self.restart_count = 0
        self.last_error: str | None = None
        #: Said in the next result: a cancelled call whose kernel had to be restarted.
        self.pending_notice: str | None = None
        self._config = config
        self._semaphore = semaphore
        self._kernel_source = kernel_source
        self._on_replaced = on_replaced
        self._lock = asyncio.Lock()
        self._running = 0
        self.closed = False

    # --- state -------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._running > 0

    @property
    def held(self) -> bool:
        """Whether an execution, restart or snapshot holds the session right now."""
        return self._lock.locked()

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

    # --- execution -------------------------------------------------------------------
    async def execute(
        self,
        code: str,
        *,
        timeout: float | None = None,
        input_data: list[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ExecutionOutcome:
        """Run code and return its outcome; Python errors are outcomes, not exceptions."""
        self.touch()
        self._running += 1
        try:
            async with self._lock, self._semaphore:
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
        started = time.perf_counter()
        status = "ok"
        message: str | None = None
        restarted = False
        failure: ExecutionErrorInfo | None = None
        reply: dict[str, Any] | None = None
        client = self.client
        try:
            execution = client.start_execute(code, on_iopub=collector.handle, on_stdin=feeder)
        except KernelDiedError as exc:
            await self._replace_kernel(exc.message)
            execution = None
            status, restarted = "error", True
            failure = _kernel_died(exc.message)
        heartbeat = (
            asyncio.create_task(self._heartbeat(progress, collector, started))
            if progress is not None and execution is not None
            else None
        )
        try:
            if execution is not None:
                try:
                    reply = await execution.wait(timeout)
                except asyncio.TimeoutError:
                    status = "timeout"
                    message = f"execution exceeded {timeout:g} s and was interrupted"
                    restarted = await self._interrupt_or_restart(execution)
                    if restarted:
                        message += (
                            "; the kernel did not stop within the grace period and was "
                            "restarted, so its variables are lost"
                        )
                    else:
                        message += "; the session keeps its variables"
                except KernelDiedError as exc:
                    status, restarted = "error", True
                    failure = _kernel_died(exc.message)
                    message = "the kernel died and was restarted; its variables are lost"
                    await self._replace_kernel(exc.message)
        except asyncio.CancelledError:
            # The client cancelled the call: stop the code, keep the session usable.
            if execution is not None:
                with anyio.CancelScope(shield=True):
                    if await self._interrupt_or_restart(execution):
                        self.pending_notice = CANCEL_RESTART_NOTICE
                        logger.warning("session %s: %s", self.session_id, CANCEL_RESTART_NOTICE)
            raise
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            collected = collector.finish()
        if reply is not None:
            content = reply.get("content", {})
            if content.get("status") != "ok" and status == "ok":
                status = "error"
        if failure is None and status == "error" and collected.error is None and reply is not None:
            content = reply.get("content", {})
            failure = ExecutionErrorInfo(
                ename=str(content.get("ename", "Error")),
                evalue=str(content.get("evalue", content.get("status", ""))),
                traceback=[],
            )
        error = failure or collected.error
        if (
            error is not None
            and feeder.exhausted
            and error.ename == "EOFError"
            and not error.evalue
        ):
            error.evalue = "input() was called but input_data has no more lines"
        if status == "timeout":
            error = ExecutionErrorInfo(
                ename="TimeoutError",
                evalue=message or "timeout",
                code="EXECUTION_TIMEOUT",
            )
        self.execution_count += 1
        if error is not None:
            self.last_error = f"{error.ename}: {error.evalue}"
        result = ExecutionResult(
            status=status,
            stdout=collected.stdout,
            stderr=collected.stderr,
            result=collected.result,
            error=error,
            outputs=collected.outputs,
            execution_count=(reply or {}).get("content", {}).get("execution_count"),
            execution_time=round(time.perf_counter() - started, 6),
            session_id=self.session_id,
            execution_id=execution_id,
            truncated=collected.truncated,
            stdout_path=collected.stdout_path,
            stderr_path=collected.stderr_path,
            kernel_restarted=restarted,
            message="; ".join(m for m in (message, collected.message) if m) or None,
        )
        if feeder.exhausted:
            note = "input_data ran out: input() raised EOFError"
            result.message = f"{result.message}; {note}" if result.message else note
        if self.pending_notice:
            note, self.pending_notice = self.pending_notice, None
            result.message = f"{note}; {result.message}" if result.message else note
        return ExecutionOutcome(result=result, collected=collected)

    async def _heartbeat(
        self, progress: ProgressCallback, collector: OutputCollector, started: float
    ) -> None:
        seen = -1
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(PROGRESS_INTERVAL)
                elapsed = time.perf_counter() - started
                tail = collector.tail() if collector.activity != seen else ""
                seen = collector.activity
                await progress(elapsed, tail)

    async def _interrupt_or_restart(self, execution: Execution) -> bool:
        """Interrupt; if the kernel is not idle within the grace period, restart it.

        Returns True when the kernel was restarted.
        """
        try:
            await execution.client.interrupt()
            await execution.wait(self._config.interrupt_grace)
            return False
        except asyncio.TimeoutError:
            execution.cancel()
            await self._replace_kernel("the kernel ignored an interrupt")
            return True
        except KernelDiedError as exc:
            await self._replace_kernel(exc.message)
            return True

    async def _replace_kernel(self, reason: str, *, requested: bool = False) -> None:
        old = self.client
        self.last_error = reason
        # A gateway kernel restarts in place (same id, so other replicas follow it); any
        # other kernel ends here and the source starts a new one.
        in_place = await old.kernel.restart_in_place()
        await old.close(kill=not in_place)
        self.client = await self._kernel_source(self)
        self.restart_count += 1
        logger.info("session %s: kernel replaced (%s)", self.session_id, reason)
        if not requested and self._on_replaced is not None:
            try:
                await self._on_replaced(self, reason)
            except Exception:  # the new kernel works; a failed follow-up must not hide it
                logger.exception("session %s: after-replacement step failed", self.session_id)

    # --- control ---------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the session: executions and restarts wait until the block ends."""
        async with self._lock:
            yield

    async def replace_kernel(self, reason: str, *, requested: bool) -> None:
        """Replace the kernel now; the caller holds ``exclusive()``.

        ``requested=False`` (a dead or hung kernel) runs the after-replacement hook.
        """
        await self._replace_kernel(reason, requested=requested)

    async def restart(self) -> None:
        """Replace the kernel with a fresh one; waits for a running execution first."""
        async with self._lock:
            await self._replace_kernel("restart requested", requested=True)

    async def interrupt(self) -> bool:
        """Interrupt whatever runs now. Returns whether anything was running."""
        was_busy = self.busy
        await self.client.interrupt()
        return was_busy

    async def close(self) -> None:
        self.closed = True
        await self.client.close(kill=True)


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


def _kernel_died(reason: str) -> ExecutionErrorInfo:
    return ExecutionErrorInfo(ename="KernelDied", evalue=reason, traceback=[], code="KERNEL_DIED")
