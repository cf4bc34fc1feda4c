"""One request in flight to a kernel, the grace its reply gets, and an execution's end.

ipykernel sends no reply to a shell request when a KeyboardInterrupt (our interrupt of
running code) lands in that request's handler outside user code (it logs "KeyboardInterrupt
caught in kernel"), but it still publishes the request's ``idle`` status on IOPub. The reply
travels on another socket than the status and can arrive just after it, so once a request
has gone idle without its reply, the reply gets ``REPLY_GRACE`` seconds; then the request's
reply future fails with ``ReplyLost``. What follows depends on the request: an execution
ends with a stand-in ``KeyboardInterrupt`` reply (``Execution``); a read-only request is
sent once more (``KernelClient.request``). Nothing is ever sent again on its own here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from python_mcp_server.errors import KernelDiedError
from python_mcp_server.infra.kernels.base import Message

if TYPE_CHECKING:
    from python_mcp_server.core.sessions.kernel_client import KernelClient

logger = logging.getLogger(__name__)

#: Seconds a request that went idle waits for its reply before it counts as dropped.
REPLY_GRACE = 2.0

IopubHandler = Callable[[Message], None]
#: Called with the input_request content; returns the text to answer with.
StdinHandler = Callable[[Mapping[str, Any]], str]


class ReplyLost(Exception):
    """The kernel went idle after a request and sent no reply within ``REPLY_GRACE``."""


@dataclass
class Pending:
    """One request in flight."""

    reply: asyncio.Future[Message]
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    #: The kernel began handling it (its busy status or execute_input arrived).
    started: bool = False
    on_iopub: IopubHandler | None = None
    on_stdin: StdinHandler | None = None
    #: Its busy/idle status sets ``execution_state`` (False: the server's own housekeeping).
    tracked: bool = True
    #: Called once its reply or its idle status has arrived, or it failed.
    on_change: Callable[[], None] | None = None
    #: The grace its reply gets once its idle status came without it.
    grace: asyncio.TimerHandle | None = None

    def replied(self, message: Message) -> None:
        """Its reply arrived (only the first counts)."""
        if self.reply.done():
            return
        self.started = True
        self.reply.set_result(message)
        self.drop()
        self._changed()

    def went_idle(self) -> None:
        """Its idle status arrived: the reply, if not here yet, gets the grace."""
        self.idle.set()
        if not self.reply.done() and self.grace is None:
            self.grace = asyncio.get_running_loop().call_later(REPLY_GRACE, self._lost)
        self._changed()

    def fail(self, error: Exception) -> None:
        """It can never be answered (the kernel died, or the client closed)."""
        if not self.reply.done():
            self._set_error(error)
        self.drop()
        self.idle.set()
        self._changed()

    def drop(self) -> None:
        """No one waits for its reply any more: the grace, if running, ends."""
        if self.grace is not None:
            self.grace.cancel()

    def _lost(self) -> None:
        if not self.reply.done():
            self._set_error(ReplyLost("the kernel went idle without replying"))
            self._changed()

    def _set_error(self, error: Exception) -> None:
        self.reply.set_exception(error)
        # Mark retrieved: an abandoned request must not warn at garbage collection.
        self.reply.exception()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class Execution:
    """An execute_request in flight.

    It completes (``wait`` returns) once its reply and its idle status have both arrived,
    told by the client's message routing as they come: no task waits for them. It is
    never sent again: a reply the kernel dropped becomes a stand-in KeyboardInterrupt.
    """

    def __init__(self, client: KernelClient, msg_id: str, pending: Pending) -> None:
        self.client = client
        self.msg_id = msg_id
        self._pending = pending
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[Message] = self._loop.create_future()
        pending.on_change = self._check

    def _check(self) -> None:
        """The reply, once the idle status has arrived too; KernelDiedError when the kernel
        died first (the reply's own error when the client closed)."""
        if self._done.done():
            return
        pending = self._pending
        reply = pending.reply
        exit_info = self.client.exit
        error = reply.exception() if reply.done() else None
        if error is not None and not isinstance(error, ReplyLost):
            self._finish(error=error)  # the client closed, or the kernel died
        elif exit_info is not None:
            self._finish(error=KernelDiedError(exit_info.reason))
        elif isinstance(error, ReplyLost):
            self._no_reply()
        elif reply.done() and pending.idle.is_set():
            self._finish(reply=reply.result())

    def _no_reply(self) -> None:
        """The grace ended without a reply: a stand-in for it."""
        logger.warning("the kernel went idle without replying to %s", self.msg_id)
        self._finish(
            reply={
                "header": {"msg_type": "execute_reply"},
                "parent_header": {"msg_id": self.msg_id},
                "content": {
                    "status": "error",
                    "ename": "KeyboardInterrupt",
                    "evalue": "interrupted before the kernel could reply",
                    "traceback": [],
                },
            }
        )

    def _finish(self, *, reply: Message | None = None, error: BaseException | None = None) -> None:
        if error is not None:
            self._done.set_exception(error)
            self._done.exception()  # retrieved: a waiter that gave up must not warn at exit
        else:
            assert reply is not None
            self._done.set_result(reply)
        self._ended()

    def _ended(self) -> None:
        self._pending.on_change = None
        self.client.forget(self.msg_id)
        self.client.executed.set()

    async def wait(self, timeout: float | None) -> Message:
        """The execute_reply once all output has arrived; TimeoutError leaves it running."""
        return await asyncio.wait_for(asyncio.shield(self._done), timeout)

    def done(self) -> bool:
        return self._done.done()

    @property
    def started(self) -> bool:
        """Whether the kernel began this code (False: it died before it got to it)."""
        return self._pending.started

    def cancel(self) -> None:
        if not self._done.done():
            self._done.cancel()
        self._ended()
