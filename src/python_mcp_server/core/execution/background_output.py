"""Output of background threads stays out of later calls' results.

ipykernel (7 and later) tags what a thread prints with the request found in the thread's
context, and falls back to the request running *now*: a thread started by one cell that
prints while a later cell runs would land in the later call's stdout. Threads do not
inherit their creator's context by default, so every kernel gets the line of
``core/sessions/thread_context.py``, which makes ``Thread.start`` run the thread inside a
copy of the starting cell's context: at start-up (``KERNEL_ARGS``) for kernels this server
launches, as a silent execute for gateway kernels. A thread's output is then tagged with
the cell that started it; once that call has ended, the kernel client routes it nowhere
and counts it (``KernelClient.unrouted_output_chars``).

``BackgroundOutputHook`` says so in the next result: "N characters printed by background
threads of earlier calls were dropped".
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from python_mcp_server.core.execution.service import ExecutionHook

if TYPE_CHECKING:
    from python_mcp_server.core.execution.service import ExecutionRequest
    from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession


class BackgroundOutputHook(ExecutionHook):
    """ExecutionHook: notes in a result the background output dropped since the last one."""

    def __init__(self) -> None:
        self._reported: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        client = session.client
        total = client.unrouted_output_chars
        dropped = total - self._reported.get(client, 0)
        self._reported[client] = total
        if dropped <= 0:
            return
        note = (
            f"{dropped} characters printed by background threads of earlier calls were "
            "dropped (they are not this call's output)"
        )
        result = outcome.result
        result.message = f"{result.message}; {note}" if result.message else note
