"""ExecutionService: the pipeline around running code in a session.

``run`` finds the session, lets each ``ExecutionHook`` look at the request before the
kernel sees it (safety policy, auto-install), runs the code, then lets each hook enrich
or record the outcome (new files, history, snapshots). Features plug in as hooks, so the
session's execution core stays small and the order of steps is written in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.core.sessions.owners import SessionSpec
from python_mcp_server.core.sessions.session import (
    ExecutionOutcome,
    KernelSession,
    ProgressCallback,
)

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
        session = await self._sessions.get_or_create_default(request.session_id)
        for hook in self.hooks:
            await hook.before(session, request)
        listeners = [w for x in self.watchers if (w := x.watch(session, request)) is not None]
        if progress is not None:
            listeners.append(progress)
        outcome = await session.execute(
            request.code,
            timeout=request.timeout,
            input_data=request.input_data,
            progress=_fan_out(listeners) if listeners else None,
        )
        for hook in self.hooks:
            await hook.after(session, request, outcome)
        return outcome
