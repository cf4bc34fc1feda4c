"""A session's life as an explicit state machine: every transition lives here.

States: ``ready`` (a live kernel waits for work), ``busy`` (an execution holds the
session), ``replacing`` (its kernel is being swapped for a new one), ``closing`` (delete,
idle reaping or shutdown has begun: nothing new starts) and ``closed``. A session is
created around a kernel that already answers, so it starts ``ready``; the ``starting``
the status vocabulary shows is a kernel whose own start-up is not over.

One FIFO lock orders everything that uses the kernel exclusively: executions,
replacements (by an execution, the health monitor or a requested restart), snapshots,
and closing. Shell requests (completions, inspections, listings, probes) pass through it
too, but only to enter: many may be in flight at once, never beside a cell. ``close``
marks the session closing *before* it waits for that lock and ends
the current kernel at once, so a running cell stops, a replacement under way throws its
new kernel away instead of keeping it, and every waiter that gets the lock afterwards is
refused with SESSION_CLOSED. No path can start a kernel for a session that is closing.

Replacements that no caller has been told about yet (the monitor replaced a dead or hung
kernel, or one died while idle) are kept as ``Replacement`` notices; the next execution
takes them and reports them in its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING

from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.errors import SessionClosedError
from python_mcp_server.models.sessions import SessionStatus

if TYPE_CHECKING:
    from python_mcp_server.core.sessions.session import KernelSession

logger = logging.getLogger(__name__)

#: Supplies a fresh kernel for this session (pool or new start).
KernelSource = Callable[["KernelSession"], Awaitable[KernelClient]]
#: Called after a kernel that died or hung was replaced (not after a requested restart),
#: with the session (already on its new kernel) and the reason; returns the variables it
#: restored (a snapshot), or None.
KernelReplacedHook = Callable[["KernelSession", str], Awaitable["list[str] | None"]]


class SessionState(str, Enum):
    """Where a session is in its life."""

    READY = "ready"
    BUSY = "busy"
    REPLACING = "replacing"
    CLOSING = "closing"
    CLOSED = "closed"


#: The only transitions there are.
_ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    SessionState.READY: frozenset(
        {SessionState.BUSY, SessionState.REPLACING, SessionState.CLOSING}
    ),
    SessionState.BUSY: frozenset(
        {SessionState.READY, SessionState.REPLACING, SessionState.CLOSING}
    ),
    SessionState.REPLACING: frozenset(
        {SessionState.READY, SessionState.BUSY, SessionState.CLOSING}
    ),
    SessionState.CLOSING: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


@dataclass
class Replacement:
    """One kernel replacement, as the next caller is told about it."""

    reason: str
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    restored: list[str] | None = None


class SessionLifecycle:
    """The state, the kernel and the lock of one session, and every transition."""

    def __init__(
        self,
        session: KernelSession,
        client: KernelClient,
        *,
        kernel_source: KernelSource,
        on_replaced: KernelReplacedHook | None,
    ) -> None:
        self._session = session
        self.client = client
        self._kernel_source = kernel_source
        self._on_replaced = on_replaced
        self.state = SessionState.READY
        self.lock = asyncio.Lock()
        self.restart_count = 0
        #: Replacements nobody has been told about yet (taken by the next execution).
        self.unreported: list[Replacement] = []
        #: The last kernel_info probe: None before any, False when it went unanswered.
        self.responsive: bool | None = None
        self.close_reason = ""
        self._closed = asyncio.Event()
        #: Shell requests in flight beside no cell (see ``shell_request``).
        self._readers = 0
        self._no_readers = asyncio.Event()
        self._no_readers.set()
        #: Counts the cells that took the session: an interrupt names the one it aims at.
        self.cells = 0

    # --- state ---------------------------------------------------------------------------
    def _move(self, target: SessionState) -> None:
        if target not in _ALLOWED[self.state]:
            raise RuntimeError(f"session cannot go from {self.state.value} to {target.value}")
        self.state = target

    @property
    def closing(self) -> bool:
        return self.state in (SessionState.CLOSING, SessionState.CLOSED)

    def status(self) -> SessionStatus:
        """The one status vocabulary list_sessions and get_kernel_health share."""
        if self.closing:
            return "closing"
        if self.state is SessionState.REPLACING:
            return "starting"
        if not self.client.is_alive():
            return "dead"
        if self.state is SessionState.BUSY:
            return "busy"
        if self.responsive is False:
            return "unresponsive"
        if self.client.execution_state == "starting":
            return "starting"
        return "idle"

    def _refuse_if_closing(self) -> None:
        if self.closing:
            raise SessionClosedError(
                f"session {self._session.session_id!r} was closed"
                + (f" ({self.close_reason})" if self.close_reason else "")
                + "; the code did not run"
            )

    # --- holding the session ---------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def hold(self, *, busy: bool) -> AsyncIterator[None]:
        """Hold the session exclusively (FIFO); SESSION_CLOSED once it is closing.

        ``busy`` marks the session busy meanwhile (an execution or a snapshot).
        """
        self._refuse_if_closing()
        async with self.lock:
            self._refuse_if_closing()
            if busy:
                await self._no_readers.wait()  # a cell never shares the kernel's queue
                self._refuse_if_closing()
                self._move(SessionState.BUSY)
                self.cells += 1
            try:
                yield
            finally:
                if busy and self.state is SessionState.BUSY:
                    self._move(SessionState.READY)

    @contextlib.asynccontextmanager
    async def shell_request(self) -> AsyncIterator[KernelClient]:
        """Admit one shell request (completion, inspection, listing, probe) to the kernel.

        A kernel drops the reply of a shell request an interrupt lands in, and interrupts
        are only ever aimed at a running cell; so requests enter in turn with the cells
        (through the FIFO lock, which they let go of at once: many may be in flight
        together), and a cell is sent only once the requests before it are answered.
        """
        self._refuse_if_closing()
        async with self.lock:
            self._refuse_if_closing()
            self._readers += 1
            self._no_readers.clear()
        try:
            yield self.client
        finally:
            self._readers -= 1
            if self._readers == 0:
                self._no_readers.set()

    # --- interrupting ---------------------------------------------------------------------
    def running_cell(self) -> int | None:
        """The number of the cell that holds the session now, or None."""
        return self.cells if self.state is SessionState.BUSY else None

    async def interrupt_cell(self) -> int | None:
        """Interrupt the cell that runs now and return its number; None (and nothing sent)
        when no cell runs: between cells or during a shell request an interrupt has
        nothing to stop, and one landing in a request would lose its reply."""
        cell = self.running_cell()
        if cell is not None:
            await self.client.interrupt()
        return cell

    async def end_cell_kernel(self, cell: int) -> bool:
        """End the kernel of a cell that ignored its interrupt, only while that same cell
        still runs (its execution then replaces the kernel and tells its caller). False,
        and nothing ended, when the cell had ended meanwhile."""
        if self.running_cell() != cell:
            return False
        await self.client.kernel.kill()
        return True

    # --- replacement ----------------------------------------------------------------------
    async def replace(self, reason: str, *, requested: bool) -> Replacement:
        """Swap the kernel for a fresh one; the caller holds ``hold()``.

        ``requested=False`` (a dead or hung kernel) runs the after-replacement hooks
        (health bookkeeping, snapshot restore). SESSION_CLOSED when the session is closing,
        before or during the start: a kernel started meanwhile is ended, never kept.
        A failing start leaves the session on its dead kernel (the next call tries again).
        """
        self._refuse_if_closing()
        back_to = self.state
        self._move(SessionState.REPLACING)
        old = self.client
        try:
            # A gateway kernel restarts in place (same id, so other replicas follow it); any
            # other kernel ends here and the source starts a new one.
            in_place = await old.kernel.restart_in_place()
            await old.close(kill=not in_place)
            new = await self._kernel_source(self._session)
        except BaseException:
            if self.state is SessionState.REPLACING:
                self._move(back_to)
            raise
        if self.closing:  # closed while the new kernel started: it must not outlive us
            await new.close(kill=True)
            self._refuse_if_closing()
        self.client = new
        self.responsive = None
        self.restart_count += 1
        self._move(back_to)
        logger.info("session %s: kernel replaced (%s)", self._session.session_id, reason)
        replacement = Replacement(reason=reason)
        if not requested and self._on_replaced is not None:
            try:
                replacement.restored = await self._on_replaced(self._session, reason)
            except Exception:  # the new kernel works; a failed follow-up must not hide it
                logger.exception(
                    "session %s: after-replacement step failed", self._session.session_id
                )
        return replacement

    async def replace_unreported(self, reason: str) -> None:
        """Replace a dead or hung kernel nobody is waiting on (the monitor, an idle death);
        the next execution is told. The caller holds ``hold()``."""
        self.unreported.append(await self.replace(reason, requested=False))

    def take_unreported(self) -> list[Replacement]:
        taken, self.unreported = self.unreported, []
        return taken

    # --- closing ---------------------------------------------------------------------------
    async def close(self, *, kill: bool, reason: str) -> None:
        """End the session: refuse new work, stop the kernel now, then wait for holders.

        ``kill=False`` only detaches (a kernel other servers share lives on).
        """
        if self.closing:
            await self._closed.wait()
            return
        self.close_reason = reason
        self._move(SessionState.CLOSING)
        try:
            # Ends a running cell at once: its execution sees the kernel go and, the session
            # being closed, reports SESSION_CLOSED instead of replacing it.
            await self.client.close(kill=kill)
        finally:
            try:
                async with self.lock:  # a replacement under way ends before we do
                    await self.client.close(kill=kill)
            finally:
                self._move(SessionState.CLOSED)
                self._closed.set()

    def abandon(self, reason: str) -> None:
        """Mark closed at once: the kernel is already gone (deleted on a gateway)."""
        if not self.closing:
            self.close_reason = reason
            self._move(SessionState.CLOSING)
        if self.state is SessionState.CLOSING:
            self._move(SessionState.CLOSED)
            self._closed.set()
