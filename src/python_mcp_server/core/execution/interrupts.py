"""interrupt_kernel's outcome in words that are true: nothing ran, it stopped, or it was ended.

An interrupt is a request (KeyboardInterrupt in the kernel); code may catch it or sit in
native code that never checks. ``interrupt_running`` sends it, waits up to the grace
period for the running execution to end, and only then says "interrupted"; if it did not
end, the kernel is killed, the running call replaces it (and tells its own caller that
the variables are lost), and the outcome is "restarted".
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from python_mcp_server.core.sessions.session import KernelSession

InterruptOutcome = Literal["nothing_running", "interrupted", "restarted"]

#: How often the running execution is checked for its end.
POLL = 0.05


def _running(session: KernelSession) -> bool:
    """A call of this server runs code, or the shared kernel says it is busy (a call
    another replica made: its IOPub status reaches every connected client)."""
    return session.busy or session.running_elsewhere


async def _ended(session: KernelSession, count: int, within: float) -> bool:
    """Whether the execution that was running ended (the session's count moved on)."""
    deadline = time.monotonic() + within
    while True:
        if session.execution_count != count or not _running(session):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL)


async def interrupt_running(
    session: KernelSession, *, grace: float, restart_within: float
) -> InterruptOutcome:
    """Interrupt what runs in the session and say what happened (module docstring)."""
    if not _running(session):
        return "nothing_running"
    count = session.execution_count
    await session.interrupt()
    if await _ended(session, count, grace):
        return "interrupted"
    await session.client.kernel.kill()
    await _ended(session, count, restart_within)
    return "restarted"
