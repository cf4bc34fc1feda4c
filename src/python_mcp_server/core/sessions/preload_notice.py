"""Tells a session, in its first result, that its kernel's preload did not apply."""

from __future__ import annotations

from typing import TYPE_CHECKING

from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession

if TYPE_CHECKING:
    from python_mcp_server.core.execution.service import ExecutionRequest


class PreloadNoticeHook:
    """An execution hook: the kernel's preload notice goes into the session's first result."""

    def __init__(self) -> None:
        self._told: dict[str, int] = {}  # session id -> id() of the session object told

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        return None

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        notice = session.client.kernel.notice
        if notice is None or self._told.get(session.session_id) == id(session):
            return
        self._told[session.session_id] = id(session)
        result = outcome.result
        result.message = f"{result.message} {notice}" if result.message else notice
