"""A tool call whose HTTP caller is gone stops: its cell is interrupted, a queued one never
starts.

On the streamable-HTTP revisions with sessions, the MCP SDK runs a ``tools/call`` in the
session's task group and answers it on the POST's SSE stream; when the client drops that
connection without a ``notifications/cancelled``, nothing cancels the handler (the 2026
single-exchange revision does cancel it). ``DisconnectWatchMiddleware`` wraps each HTTP
request's ``receive`` and marks the request when the server reads its ``http.disconnect``
(the SSE response listens for exactly that); ``until_caller_gone`` runs a call in a cancel
scope that its own HTTP request's mark cancels. Cancelling is what a client's cancel does: a
running cell is interrupted (variables stay), a call still waiting for its session never
starts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from fastmcp.server.dependencies import get_http_request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_mcp_server.errors import ServerError

logger = logging.getLogger(__name__)

SCOPE_KEY = "python_mcp_server.caller_gone"
T = TypeVar("T")


class CallerGoneError(ServerError):
    """The HTTP caller disconnected before its call finished; nobody reads this answer."""


class CallerGone:
    """The mark of one HTTP request: set once its client disconnected; whoever listens is
    told at once (a call stops without a task watching for it)."""

    def __init__(self) -> None:
        self._set = False
        self._listeners: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        for listener in list(self._listeners):
            listener()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when the caller goes (at once if gone); returns the undo."""
        if self._set:
            listener()
            return lambda: None
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)


class DisconnectWatchMiddleware:
    """Marks an HTTP request's scope once its client has disconnected."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = CallerGone()
        scope[SCOPE_KEY] = gone

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            return message

        await self.app(scope, watched, send)


def caller_gone_event() -> CallerGone | None:
    """The current call's disconnect mark (None outside HTTP, e.g. stdio or in-memory)."""
    with contextlib.suppress(RuntimeError):
        event: Any = get_http_request().scope.get(SCOPE_KEY)
        return event if isinstance(event, CallerGone) else None
    return None


async def until_caller_gone(call: Awaitable[T]) -> T:
    """Run ``call``; cancel it (and raise CallerGoneError) if the HTTP caller leaves first.

    Cancelling is what a client's cancel does; the call runs in the caller's own task,
    inside a cancel scope that the disconnect mark cancels."""
    gone = caller_gone_event()
    if gone is None:
        return await call

    def stop() -> None:
        logger.info("the caller disconnected: its call is cancelled")
        scope.cancel()

    with anyio.CancelScope() as scope:
        forget = gone.listen(stop)
        try:
            return await call
        finally:
            forget()
    # Only the mark cancels this scope: the call ended by it, nobody reads its answer.
    raise CallerGoneError("the caller disconnected before the call finished; it stopped")
