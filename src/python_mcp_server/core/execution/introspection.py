"""Introspection of a session's kernel: completion, inspection, the user's variables.

Completion and inspection are complete_request / inspect_request on the shell channel;
the variable listing is a silent private evaluation (``private_eval``). Every request is
matched to its reply by msg_id in ``KernelClient``. A kernel answers shell requests one at
a time, and drops the reply of one an interrupt lands in, so these requests hold the
session (``KernelSession.held_request``): while a cell runs they wait for it to finish. If
it does not finish within the timeout, the call fails with SESSION_BUSY. A reply dropped
all the same (an interrupt that arrived late) is asked for once more by
``KernelClient.request``; lost twice, the call fails with KERNEL_REPLY_LOST.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from python_mcp_server.core.execution.output_collector import strip_ansi
from python_mcp_server.core.execution.private_eval import run_probe
from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.core.sessions.owners import SessionSpec
from python_mcp_server.core.sessions.session import KernelSession
from python_mcp_server.errors import (
    InvalidInputError,
    KernelUnresponsiveError,
    ServerError,
    SessionBusyError,
)
from python_mcp_server.models.introspection import (
    CompletionResult,
    CompletionType,
    InspectionResult,
    VariableInfo,
    VariableList,
)

T = TypeVar("T")

#: Where jedi's per-match kinds and signatures live in a complete_reply.
TYPES_KEY = "_jupyter_types_experimental"


@dataclass(frozen=True)
class IntrospectionConfig:
    """How long introspection may wait, and how much it lists."""

    #: Seconds a request may wait for the kernel (including behind a running cell).
    timeout: float = 30.0
    #: Most variables listed.
    max_variables: int = 500


def resolve_cursor(code: str, cursor_pos: int | None) -> int:
    """The cursor position in characters; default: the end of the code."""
    if cursor_pos is None:
        return len(code)
    if not 0 <= cursor_pos <= len(code):
        raise InvalidInputError(
            f"cursor_pos {cursor_pos} is outside the code (0 to {len(code)} characters)"
        )
    return cursor_pos


class IntrospectionService:
    """Asks a session's kernel about names and values."""

    def __init__(self, sessions: SessionManager, config: IntrospectionConfig) -> None:
        self._sessions = sessions
        self._config = config

    async def _shell(
        self, session: KernelSession, msg_type: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        timeout = self._config.timeout
        reply = await self._guard(
            session,
            session.held_request(
                lambda client: client.request(msg_type, content, timeout=timeout),
                timeout=timeout,
            ),
        )
        body = reply.get("content", {})
        if body.get("status") != "ok":
            raise ServerError(
                f"the kernel could not answer {msg_type}: "
                f"{body.get('ename', '')}: {body.get('evalue', body.get('status', ''))}"
            )
        return dict(body)

    async def _guard(self, session: KernelSession, pending: Awaitable[T]) -> T:
        """Turn a timeout behind a running cell into SESSION_BUSY."""
        try:
            return await pending
        except KernelUnresponsiveError as exc:
            if session.busy:
                raise SessionBusyError(
                    f"session {session.session_id!r} is running code; its kernel answers "
                    f"after the code finishes, which took longer than "
                    f"{self._config.timeout:g} s. Try again, or interrupt_kernel"
                ) from exc
            raise

    async def complete(
        self, code: str, cursor_pos: int | None, session_id: SessionSpec
    ) -> CompletionResult:
        cursor = resolve_cursor(code, cursor_pos)
        session = await self._sessions.get_or_create_default(session_id)
        body = await self._shell(session, "complete_request", {"code": code, "cursor_pos": cursor})
        metadata = body.get("metadata") or {}
        types = [
            CompletionType(
                text=str(item.get("text", "")),
                type=item.get("type") or None,
                signature=item.get("signature") or None,
                start=item.get("start"),
                end=item.get("end"),
            )
            for item in metadata.get(TYPES_KEY, [])
            if isinstance(item, dict)
        ]
        return CompletionResult(
            matches=[str(m) for m in body.get("matches", [])],
            cursor_start=int(body.get("cursor_start", cursor)),
            cursor_end=int(body.get("cursor_end", cursor)),
            types=types,
            session_id=session.session_id,
        )

    async def inspect(
        self, code: str, cursor_pos: int | None, detail_level: int, session_id: SessionSpec
    ) -> InspectionResult:
        cursor = resolve_cursor(code, cursor_pos)
        if detail_level not in (0, 1):
            raise InvalidInputError("detail_level must be 0 (docstring) or 1 (with source)")
        session = await self._sessions.get_or_create_default(session_id)
        body = await self._shell(
            session,
            "inspect_request",
            {"code": code, "cursor_pos": cursor, "detail_level": detail_level},
        )
        found = bool(body.get("found"))
        text = str((body.get("data") or {}).get("text/plain", "")) if found else ""
        return InspectionResult(found=found, text=strip_ansi(text), session_id=session.session_id)

    async def variables(self, session_id: SessionSpec) -> VariableList:
        session = await self._sessions.get_or_create_default(session_id)
        timeout = self._config.timeout
        limit = {"limit": self._config.max_variables}
        answer = await self._guard(
            session,
            session.held_request(
                lambda client: run_probe(client, "list_variables", limit, timeout=timeout),
                timeout=timeout,
            ),
        )
        variables = [VariableInfo.model_validate(item) for item in answer["variables"]]
        total = int(answer["total"])
        return VariableList(
            variables=variables,
            total=total,
            truncated=total > len(variables),
            session_id=session.session_id,
        )
