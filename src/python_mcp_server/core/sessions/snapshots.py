"""State snapshots: a session's picklable variables, saved and restored across kernels.

The kernel pickles its own variables (dill, by ``kernel_probe``) and hands back opaque
bytes; the server stores them in ``<state>/snapshots`` and sends them to the new kernel
to load. The server never unpickles user data itself.

- ``restart_preserving``: restart_kernel(preserve_state=True): save, restart, restore.
- ``SnapshotHook``: with ``MCP_AUTO_SNAPSHOT``, a snapshot after each successful execution.
- ``after_replacement``: a SessionManager replacement hook; a kernel that died or hung comes
  back with the last snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from python_mcp_server.core.execution.private_eval import run_probe
from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.errors import ServerError, SessionClosedError
from python_mcp_server.models.sessions import NotKept, PreservedState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotConfig:
    """Where snapshots live, how big they may be, and whether they are automatic."""

    folder: Path
    max_bytes: int
    auto: bool
    #: Seconds the kernel may take to save or load variables.
    timeout: float


@dataclass
class Snapshot:
    """The saved variables of one session incarnation."""

    session_id: str
    session_created: datetime
    path: Path
    kept: list[str]
    not_kept: list[NotKept]
    size: int
    taken_at: float = field(default_factory=time.monotonic)


@dataclass
class Restore:
    """What loading a snapshot into a kernel did."""

    restored: list[str]
    failed: list[NotKept]
    at: float = field(default_factory=time.monotonic)


def _pairs(items: object) -> list[NotKept]:
    if not isinstance(items, list):
        return []
    return [NotKept(name=str(name), reason=str(reason)) for name, reason in items]


class SnapshotService:
    """Saves and restores sessions' variables."""

    def __init__(self, config: SnapshotConfig) -> None:
        self.config = config
        self._latest: dict[str, Snapshot] = {}
        self._restores: dict[str, Restore] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Create the folder; snapshots of an earlier server belong to no live session."""
        await asyncio.to_thread(self._clear_folder)

    async def aclose(self) -> None:
        pending, self._pending = list(self._pending), set()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._latest.clear()
        await asyncio.to_thread(self._clear_folder)

    def _clear_folder(self) -> None:
        self.config.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in self.config.folder.glob("*.snapshot"):
            stale.unlink(missing_ok=True)

    # --- lookup ------------------------------------------------------------------------
    def latest(self, session: KernelSession) -> Snapshot | None:
        """The last snapshot of this session (not of an earlier session of the same name)."""
        snapshot = self._latest.get(session.key)
        if snapshot is None or snapshot.session_created != session.created_at:
            return None
        return snapshot

    # --- save and load -----------------------------------------------------------------
    async def capture(self, session: KernelSession) -> Snapshot:
        """Save the session's variables now; the caller holds ``session.exclusive()``."""
        answer = await run_probe(
            session.client,
            "capture",
            {"max_bytes": self.config.max_bytes},
            timeout=self.config.timeout,
        )
        path = self.config.folder / f"{session.key}.snapshot"
        await asyncio.to_thread(_write_private, path, str(answer["payload"]))
        snapshot = Snapshot(
            session_id=session.session_id,
            session_created=session.created_at,
            path=path,
            kept=[str(name) for name in answer["kept"]],
            not_kept=_pairs(answer["not_kept"]),
            size=int(answer["size"]),
        )
        self._latest[session.key] = snapshot
        return snapshot

    def capture_soon(self, session: KernelSession) -> None:
        """Snapshot in the background, holding the session so the next execution waits.

        The result of the execution that triggered it goes back at once; the snapshot task
        takes the session's lock before any later call can (the lock is first come, first
        served), so it sees exactly the state that execution left.
        """
        task = asyncio.create_task(self._capture_now(session), name="auto-snapshot")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _capture_now(self, session: KernelSession) -> None:
        try:
            async with session.exclusive():
                await self.capture(session)
        except SessionClosedError:
            return  # deleted or stopping: nothing to keep
        except ServerError as exc:
            if not session.closed:
                logger.warning("session %s: snapshot failed: %s", session.session_id, exc)

    async def restore(self, session: KernelSession, snapshot: Snapshot) -> Restore:
        """Load a snapshot into the session's (new) kernel."""
        payload = await asyncio.to_thread(snapshot.path.read_text, encoding="ascii")
        answer = await run_probe(
            session.client, "restore", {"payload": payload}, timeout=self.config.timeout
        )
        restore = Restore(
            restored=[str(name) for name in answer["restored"]],
            failed=_pairs(answer["failed"]),
        )
        self._restores[session.key] = restore
        return restore

    def forget(self, session_id: str) -> None:
        """Drop a deleted session's snapshot."""
        snapshot = self._latest.pop(session_id, None)
        self._restores.pop(session_id, None)
        if snapshot is not None:
            snapshot.path.unlink(missing_ok=True)

    # --- the three uses ------------------------------------------------------------------
    async def restart_preserving(self, session: KernelSession) -> PreservedState:
        """Restart the kernel keeping every variable that can be pickled."""
        async with session.exclusive():
            source: Literal["kernel", "last_snapshot", "none"] = "kernel"
            problem: NotKept | None = None
            snapshot: Snapshot | None
            try:
                snapshot = await self.capture(session)
            except ServerError as exc:
                snapshot = self.latest(session)
                source = "last_snapshot" if snapshot is not None else "none"
                problem = NotKept(
                    name="*", reason=f"the kernel could not save its variables: {exc.message}"
                )
            await session.replace_kernel("restart requested", requested=True)
            restore = await self.restore(session, snapshot) if snapshot is not None else None
        not_kept = list(snapshot.not_kept) if snapshot is not None else []
        if problem is not None:
            not_kept.insert(0, problem)
        if restore is not None:
            not_kept += restore.failed
        return PreservedState(
            kept=restore.restored if restore is not None else [],
            not_kept=not_kept,
            size_bytes=snapshot.size if snapshot is not None else 0,
            source=source,
        )

    async def after_replacement(self, session: KernelSession, reason: str) -> list[str] | None:
        """SessionManager hook: bring a replaced kernel back to the last auto snapshot;
        returns the restored variables (the session reports them to the next caller)."""
        if not self.config.auto:
            return None
        snapshot = self.latest(session)
        if snapshot is None:
            return None
        restore = await self.restore(session, snapshot)
        logger.info(
            "session %s: restored %d variable(s) from the last snapshot after: %s",
            session.session_id,
            len(restore.restored),
            reason,
        )
        return restore.restored


def _write_private(path: Path, text: str) -> None:
    """Write a file only the server's user can read, replacing it atomically."""
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    os.replace(partial, path)


class SnapshotHook:
    """ExecutionHook: a snapshot after each successful execution (MCP_AUTO_SNAPSHOT).

    What a crash's restore brought back is reported by the session itself
    (``restored_variables``), whichever path replaced the kernel.
    """

    def __init__(self, service: SnapshotService) -> None:
        self._service = service

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        if self._service.config.auto and outcome.result.status == "ok" and not session.closed:
            self._service.capture_soon(session)

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        return None
