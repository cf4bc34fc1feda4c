"""interrupt_kernel's outcome in words that are true: nothing ran, it stopped, or it was ended.

An interrupt is a request (KeyboardInterrupt in the kernel); code may catch it or sit in
native code that never checks. ``interrupt_running`` aims it at the one cell that runs
now (the session's lifecycle numbers them), waits up to the grace period for that cell
to end, and only then says "interrupted"; if that same cell still runs, its kernel is
killed, the running call replaces it (and tells its own caller that the variables are
lost), and the outcome is "restarted". An interrupt that finds no cell running (between
cells, or while only completions, inspections or probes are in flight) sends nothing
and never restarts anything. On kernels shared with other servers the cell may be
another replica's: then the kernel's own busy state is what is interrupted and waited on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

from python_mcp_server.core.sessions.lifecycle import SessionState
from python_mcp_server.core.sessions.session import KernelSession

InterruptOutcome = Literal["nothing_running", "interrupted", "restarted"]

#: How often the running execution is checked for its end.
POLL = 0.05


async def _until(done: Callable[[], bool], within: float) -> bool:
    """Whether ``done`` became true within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL)
    return True


def _foreign_cell(session: KernelSession) -> bool:
    """A shared kernel busy with a cell another replica sent (none of ours is in it)."""
    return (
        session.lifecycle.state is SessionState.READY
        and not session.busy
        and session.running_elsewhere
    )


async def interrupt_running(
    session: KernelSession, *, grace: float, restart_within: float
) -> InterruptOutcome:
    """Interrupt what runs in the session and say what happened (module docstring)."""
    lifecycle = session.lifecycle
    cell = await lifecycle.interrupt_cell()
    if cell is None:
        if not _foreign_cell(session):
            return "nothing_running"
        await session.client.interrupt()
        if await _until(lambda: session.client.execution_state != "busy", grace):
            return "interrupted"
        await session.client.kernel.kill()
        return "restarted"
    if await _until(lambda: lifecycle.running_cell() != cell, grace):
        return "interrupted"
    if not await lifecycle.end_cell_kernel(cell):
        return "interrupted"  # it ended just as the grace period did
    await _until(lambda: lifecycle.running_cell() != cell, restart_within)
    return "restarted"
