"""The Jupyter messaging protocol over a launched kernel's channels.

``KernelClient`` talks to one kernel process incarnation. Every request is tracked by its
``msg_id``; replies and IOPub messages are routed to the request whose ``parent_header``
names it, so concurrent requests (an execution, a completion, a health probe) never get
each other's answers. When the kernel process ends, every pending request fails at once
with ``KernelDiedError`` carrying the reason. A reply the kernel dropped (an interrupt landed
in its handler; see ``kernel_requests``) is asked for once more when the request only reads
(``READ_ONLY_REQUESTS``); an execution is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from python_mcp_server.core.sessions.kernel_requests import (
    Execution,
    IopubHandler,
    Pending,
    ReplyLost,
    StdinHandler,
)
from python_mcp_server.errors import (
    KernelDiedError,
    KernelReplyLostError,
    KernelSilentError,
    KernelStartError,
    KernelUnresponsiveError,
)
from python_mcp_server.infra.kernels.base import (
    Channel,
    KernelChannels,
    KernelExit,
    LaunchedKernel,
    Message,
)

logger = logging.getLogger(__name__)

#: Requests whose busy/idle status says nothing of whether code runs (the kernel answers
#: them on control, or alongside a running cell); as Jupyter Server's activity tracking.
UNTRACKED_PARENTS = frozenset(
    {
        "kernel_info_request",
        "comm_info_request",
        "shutdown_request",
        "interrupt_request",
        "debug_request",
    }
)

#: Requests that change nothing in the kernel: one whose reply was dropped is sent again.
READ_ONLY_REQUESTS = frozenset(
    {
        "kernel_info_request",
        "complete_request",
        "inspect_request",
        "is_complete_request",
        "history_request",
        "comm_info_request",
    }
)


class KernelClient:
    """Requests and replies for one running kernel."""

    def __init__(self, kernel: LaunchedKernel, channels: KernelChannels) -> None:
        self.kernel = kernel
        self._channels = channels
        self._pending: dict[str, Pending] = {}
        self._exit: KernelExit | None = None
        self.execution_state = "starting"
        #: Characters of stream output tagged with no request in flight (background
        #: threads of calls that ended); see core/execution/background_output.py.
        self.unrouted_output_chars = 0
        #: Tracked status messages seen (``execution_state`` changes from the kernel).
        self._status_updates = 0
        self._settling: asyncio.Task[None] | None = None
        self._closed = False
        #: Set once an execution ended (answered, or the kernel died): the kernel pool
        #: starts a taken kernel's successor after its session's first call.
        self.executed = asyncio.Event()
        channels.start(self._on_message, self._on_closed)
        self._death_task = asyncio.create_task(self._watch_death(), name="kernel-death-watch")

    # --- lifecycle -------------------------------------------------------------------
    @classmethod
    async def connect(cls, kernel: LaunchedKernel, *, timeout: float) -> KernelClient:
        """Open channels to a launched kernel and wait until it answers kernel_info; a
        kernel that fails either way is ended (on a gateway: deleted), never left behind."""
        try:
            channels = await kernel.connect()
        except BaseException:
            await kernel.kill()
            raise
        client = cls(kernel, channels)
        try:
            await client.wait_ready(timeout)
            await channels.wait_connected(timeout)
        except BaseException:
            await client.close(kill=True)
            raise
        return client

    async def wait_ready(self, timeout: float, *, channel: Channel = "shell") -> None:
        """Send kernel_info until it is answered AND its idle status arrives on IOPub.

        A SUB socket misses what is published before its subscription reaches the kernel
        (a fresh kernel, or one a gateway just restarted), so a reply alone does not prove
        the outputs of the next request will arrive; the status the kernel publishes for
        this very request does. ``channel="control"`` works while the kernel is busy.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempt_timeout = 0.25
        replied = False
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise KernelSilentError(self._not_ready_reason(timeout, replied=replied))
            wait = min(attempt_timeout, remaining)
            try:
                msg_id, pending = self._submit(channel, "kernel_info_request", {})
            except KernelDiedError as exc:
                raise KernelStartError(f"the kernel died while starting: {exc.message}") from exc
            try:
                await asyncio.wait_for(asyncio.shield(pending.reply), wait)
                replied = True
                await asyncio.wait_for(pending.idle.wait(), wait)
            except (asyncio.TimeoutError, ReplyLost):
                attempt_timeout = min(attempt_timeout * 2, 2.0)
                continue
            except KernelDiedError as exc:
                raise KernelStartError(f"the kernel died while starting: {exc.message}") from exc
            finally:
                self._drop(msg_id)
            if self._exit is not None:
                raise KernelStartError(f"the kernel died while starting: {self._exit.reason}")
            self.execution_state = "idle"
            return

    def _not_ready_reason(self, timeout: float, *, replied: bool) -> str:
        if replied:
            reason = (
                f"the kernel answered, but its output channel (IOPub) did not deliver within "
                f"{timeout:g} s"
            )
        else:
            reason = f"the kernel did not answer within {timeout:g} s"
        tail = self.kernel.output_tail().strip()
        if tail:
            reason += "; its last output:\n" + "\n".join(tail.splitlines()[-15:])
        return reason

    async def close(self, *, kill: bool) -> None:
        """Close the channels; with ``kill``, end the kernel process too. Idempotent."""
        if self._closed:
            if kill:
                await self.kernel.kill()
            return
        self._closed = True
        try:
            if kill:
                await self.kernel.kill()
        finally:  # a caller cancelled while the kernel was being reaped still closes all
            self._death_task.cancel()  # it only waits for the exit: nothing to wait for
            if self._settling is not None:
                self._settling.cancel()
            self._fail_all(KernelDiedError("the kernel was shut down"))
            await self._channels.close()

    @property
    def exit(self) -> KernelExit | None:
        """How the kernel ended, once it has."""
        return self._exit

    def is_alive(self) -> bool:
        return self._exit is None and self.kernel.is_alive()

    async def wait_exit(self) -> KernelExit:
        return await self.kernel.wait_exit()

    async def exit_reason(self, wait: float = 2.0) -> str:
        """How the kernel ended, for a kernel found not alive.

        The process can be seen gone (``is_alive`` polls it) a moment before its exit
        status is collected; waiting up to ``wait`` seconds for that status keeps the
        reason exact (``killed by SIGKILL``) instead of a generic one.
        """
        exit_info = self._exit
        if exit_info is None:
            with contextlib.suppress(asyncio.TimeoutError):
                exit_info = await asyncio.wait_for(self.kernel.wait_exit(), wait)
        return exit_info.reason if exit_info is not None else "the kernel process ended"

    async def _watch_death(self) -> None:
        exit_info = await self.kernel.wait_exit()
        self._exit = exit_info
        self.execution_state = "dead"
        self._fail_all(KernelDiedError(exit_info.reason))

    def _fail_all(self, error: Exception) -> None:
        pending = list(self._pending.values())
        self._pending.clear()
        for request in pending:
            request.fail(error)

    # --- message routing -------------------------------------------------------------
    def _on_message(self, channel: Channel, message: Message) -> None:
        """Route one message; a malformed one (kernel code can forge them) is dropped."""
        try:
            self._route(channel, message)
        except Exception:
            logger.warning("dropped a malformed %s message from the kernel", channel, exc_info=True)

    def _route(self, channel: Channel, message: Message) -> None:
        parent_id = message.get("parent_header", {}).get("msg_id")
        msg_type = message.get("header", {}).get("msg_type", "")
        content = message.get("content")
        if not isinstance(content, dict):
            raise ValueError("message content is not an object")
        request = self._pending.get(parent_id) if isinstance(parent_id, str) else None
        if channel == "iopub" and msg_type == "status":
            parent_type = message.get("parent_header", {}).get("msg_type", "")
            if parent_type not in UNTRACKED_PARENTS and (request is None or request.tracked):
                self.execution_state = str(content.get("execution_state", ""))
                self._status_updates += 1
        if request is None:
            if channel == "iopub" and msg_type == "stream":
                self.unrouted_output_chars += len(str(message["content"].get("text", "")))
            return
        if channel == "iopub":
            if msg_type == "status":
                state = content.get("execution_state")
                if state == "busy":
                    request.started = True
                elif state == "idle":
                    request.went_idle()
            else:
                if msg_type == "execute_input":
                    request.started = True
                if request.on_iopub is not None:
                    request.on_iopub(message)
        elif channel == "stdin":
            if msg_type == "input_request":
                self._answer_input(request, message)
        else:
            request.replied(message)

    def _answer_input(self, request: Pending, message: Message) -> None:
        if request.on_stdin is None:
            value = "\x04"  # EOF: input() raises EOFError at once
        else:
            try:
                value = request.on_stdin(message["content"])
            except Exception:  # a failing handler must not hang the kernel
                logger.exception("stdin handler failed")
                value = "\x04"
        reply = self._channels.new_message("input_reply", {"value": value})
        reply["parent_header"] = message["header"]
        self._channels.send("stdin", reply)

    def _on_closed(self, reason: str) -> None:
        logger.debug("kernel channel closed: %s", reason)

    # --- requests --------------------------------------------------------------------
    def _submit(
        self,
        channel: Channel,
        msg_type: str,
        content: Mapping[str, Any],
        *,
        on_iopub: IopubHandler | None = None,
        on_stdin: StdinHandler | None = None,
        tracked: bool = True,
    ) -> tuple[str, Pending]:
        if self._exit is not None:
            raise KernelDiedError(self._exit.reason)
        message = self._channels.new_message(msg_type, content)
        msg_id = str(message["header"]["msg_id"])
        pending = Pending(
            reply=asyncio.get_running_loop().create_future(),
            on_iopub=on_iopub,
            on_stdin=on_stdin,
            tracked=tracked,
        )
        self._pending[msg_id] = pending
        self._channels.send(channel, message)
        return msg_id, pending

    def _drop(self, msg_id: str) -> None:
        """Stop waiting for a request: a late reply to it is dropped, never misrouted."""
        pending = self._pending.pop(msg_id, None)
        if pending is not None:
            pending.drop()

    def busy_until_shell_answers(self) -> None:
        """Take the kernel as busy with code another client sent, until a
        ``kernel_info_request`` sent now on shell is answered: shell requests run in
        order, so its reply means what ran before it has ended. Status messages of
        requests seen meanwhile say the state instead."""
        self.execution_state = "busy"
        seen = self._status_updates
        msg_id, pending = self._submit("shell", "kernel_info_request", {})

        async def settle() -> None:
            try:
                await pending.reply
            except ReplyLost:
                pass  # its idle status came: the kernel got to it, so what ran before ended
            except Exception:  # the kernel died or the client closed: nothing to settle
                return
            finally:
                self._drop(msg_id)
            if self._status_updates == seen:
                self.execution_state = "idle"

        self._settling = asyncio.create_task(settle(), name="kernel-busy-settle")

    async def request(
        self,
        msg_type: str,
        content: Mapping[str, Any],
        *,
        timeout: float,
        channel: Channel = "shell",
    ) -> Message:
        """Send a request and return its reply (kernel_info, complete, inspect, ...).

        A reply the kernel dropped (its idle status came without it, see ``kernel_requests``)
        is asked for once more with a fresh msg_id when the request only reads; lost again
        (or not read-only), KERNEL_REPLY_LOST. Both tries share ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        tries = 2 if msg_type in READ_ONLY_REQUESTS else 1
        for attempt in range(1, tries + 1):
            msg_id, pending = self._submit(channel, msg_type, content)
            try:
                left = max(deadline - loop.time(), 0.0)
                return await asyncio.wait_for(asyncio.shield(pending.reply), left)
            except asyncio.TimeoutError as exc:
                raise KernelUnresponsiveError(
                    f"the kernel did not answer {msg_type} within {timeout:g} s"
                ) from exc
            except ReplyLost:
                logger.warning(
                    "the kernel went idle without replying to %s %s (try %d of %d)",
                    msg_type,
                    msg_id,
                    attempt,
                    tries,
                )
            finally:
                self._drop(msg_id)
        raise KernelReplyLostError(
            f"the kernel dropped its reply to {msg_type}"
            + (" twice" if tries > 1 else "")
            + ": an interrupt reached it while it answered (the kernel goes on as before; "
            "its variables are kept). Try again"
        )

    def start_execute(
        self,
        code: str,
        *,
        on_iopub: IopubHandler,
        on_stdin: StdinHandler | None,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: Mapping[str, str] | None = None,
        tracked: bool = True,
    ) -> Execution:
        """Send execute_request; the returned ``Execution`` completes on reply + idle.

        ``tracked=False``: the request's busy/idle status leaves ``execution_state`` alone
        (code the server runs for itself, which no one should see as a running cell)."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": dict(user_expressions or {}),
            "allow_stdin": True,
            "stop_on_error": False,
        }
        msg_id, pending = self._submit(
            "shell",
            "execute_request",
            content,
            on_iopub=on_iopub,
            on_stdin=on_stdin,
            tracked=tracked,
        )
        return Execution(self, msg_id, pending)

    def send_interrupt_message(self) -> None:
        """Interrupt through the control channel (kernels whose signals cannot reach them)."""
        if self._exit is None:
            message = self._channels.new_message("interrupt_request", {})
            self._channels.send("control", message)

    async def interrupt(self) -> None:
        """Interrupt the running code by the kernel's interrupt mode."""
        if self.kernel.interrupt_mode == "signal":
            await self.kernel.send_interrupt_signal()
        else:
            self.send_interrupt_message()

    def forget(self, msg_id: str) -> None:
        self._drop(msg_id)
