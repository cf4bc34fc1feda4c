"""ExecutionService: the pipeline around running code in a session.

``run`` finds the session, lets each ``ExecutionHook`` look at the request before the
kernel sees it (safety policy, auto-install), runs the code, then lets each hook enrich
or record the outcome (new files, history, snapshots). Features plug in as hooks, so the
session's execution core stays small and the order of steps is written in one place.

The pipeline is total: an attempt that a hook refuses, or whose run fails, is still
recorded once by the hooks that record (``records_attempts = True``: history, audit); a
hook that fails after a finished run is noted in the result instead of hiding it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from python_mcp_server.core.execution.output_collector import CollectedOutput
from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.core.sessions.owners import SessionSpec
from python_mcp_server.core.sessions.session import (
    ExecutionOutcome,
    KernelSession,
    ProgressCallback,
)
from python_mcp_server.errors import ServerError
from python_mcp_server.models.execution import ExecutionErrorInfo, ExecutionResult

logger = logging.getLogger(__name__)


@dataclass
class ExecutionRequest:
    """One call of run_python_code (or a compat variant), as the hooks see it."""

    code: str
    #: The caller's session (a SessionRef names its principal).
    session_id: SessionSpec = None
    timeout: float | None = None
    input_data: list[str] | None = None
    allow_unsafe: bool = False
    #: Facts hooks add before the run, copied onto the result by the hook that owns them.
    notes: dict[str, Any] = field(default_factory=dict)


class ExecutionHook(Protocol):
    """A step around execution. ``before`` may raise a ServerError to refuse the run.

    Both steps do nothing by default: a hook that subclasses this writes only the one it
    needs.
    """

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        return None

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        return None


class ExecutionWatcher(Protocol):
    """Something that may want to hear a run's progress while it runs (the live view)."""

    def watch(self, session: KernelSession, request: ExecutionRequest) -> ProgressCallback | None:
        """A callback for the run's progress (elapsed seconds, latest output), or None."""


def _fan_out(listeners: list[ProgressCallback]) -> ProgressCallback:
    """One progress callback that tells every listener; one failing never stops the rest."""

    async def tell(elapsed: float, recent: str) -> None:
        for listener in listeners:
            try:
                await listener(elapsed, recent)
            except Exception:
                logger.debug("a progress listener failed", exc_info=True)

    return listeners[0] if len(listeners) == 1 else tell


class ExecutionService:
    """Runs code in a session with every registered hook around it."""

    def __init__(self, sessions: SessionManager, hooks: list[ExecutionHook] | None = None) -> None:
        self._sessions = sessions
        self.hooks: list[ExecutionHook] = list(hooks or [])
        self.watchers: list[ExecutionWatcher] = []

    def add_hook(self, hook: ExecutionHook) -> None:
        self.hooks.append(hook)

    async def run(
        self, request: ExecutionRequest, *, progress: ProgressCallback | None = None
    ) -> ExecutionOutcome:
        """Run the request; every attempt ends in exactly one recorded outcome.

        A run a hook refuses (``UNSAFE_CODE``...) or that fails before it finishes is
        recorded by the recording hooks (history, audit) as an error carrying the error's
        code, then the error is raised as before. A hook whose ``after`` fails is logged
        and named in the result's message; the finished result still goes back.
        """
        session = await self._sessions.get_or_create_default(request.session_id)
        try:
            for hook in self.hooks:
                await hook.before(session, request)
        except ServerError as exc:
            await self._record_unfinished(session, request, exc, "refused")
            raise
        listeners = [w for x in self.watchers if (w := x.watch(session, request)) is not None]
        if progress is not None:
            listeners.append(progress)
        try:
            outcome = await session.execute(
                request.code,
                timeout=request.timeout,
                input_data=request.input_data,
                progress=_fan_out(listeners) if listeners else None,
            )
        except BaseException as exc:
            await self._record_unfinished(session, request, exc, "did not finish")
            raise
        for hook in self.hooks:
            try:
                await hook.after(session, request, outcome)
            except Exception as exc:  # the code ran: a failing step must not hide that
                logger.exception(
                    "execution %s: a step after the run failed", outcome.result.execution_id
                )
                note = f"a step after the run failed ({type(hook).__name__}: {exc})"
                message = outcome.result.message
                outcome.result.message = f"{message}; {note}" if message else note
        return outcome

    async def _record_unfinished(
        self,
        session: KernelSession,
        request: ExecutionRequest,
        exc: BaseException,
        how: str,
    ) -> None:
        """Tell the recording hooks about an attempt that produced no result."""
        outcome = unfinished_outcome(session.session_id, exc, how)
        with anyio.CancelScope(shield=True):
            for hook in self.hooks:
                if not getattr(hook, "records_attempts", False):
                    continue
                try:
                    await hook.after(session, request, outcome)
                except Exception:
                    logger.exception("recording an unfinished execution failed")


def unfinished_outcome(session_id: str, exc: BaseException, how: str) -> ExecutionOutcome:
    """The outcome recorded for an attempt that was refused or did not finish."""
    if isinstance(exc, ServerError):
        code, text = exc.code.value, exc.message
    elif isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        code, text = "CANCELLED", "the call was cancelled"
    else:
        code, text = "INTERNAL_ERROR", type(exc).__name__
    error = ExecutionErrorInfo(ename=code, evalue=text, code=code)
    result = ExecutionResult(
        status="error",
        error=error,
        session_id=session_id,
        execution_id=uuid.uuid4().hex[:12],
        message=f"the code {how}: {code}",
    )
    collected = CollectedOutput(
        stdout="",
        stderr="",
        result=None,
        error=error,
        outputs=[],
        images=[],
        stdout_path=None,
        stderr_path=None,
        truncated=False,
    )
    return ExecutionOutcome(result=result, collected=collected)
