"""Which server starts a shared session's kernel: the session manager's use of the registry.

With kernels shared by replicas (a gateway), a new session's kernel must be started once,
by one replica. ``SessionClaims`` asks the registry (``registry.py``) for the session's
row before any start: the replica whose claim wins starts the kernel and confirms the
row; any other is told SESSION_EXISTS (``create_session``) or waits for the kernel and
attaches (a first call on the default session). Without a registry (a launcher whose
kernels are this server's own) there is nothing to share and no claim is needed.

Reads that only help (the row of a session being attached) tolerate a database that
cannot be reached; the claim itself never does: DATABASE_UNAVAILABLE, never a guess.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from python_mcp_server.core.sessions.owners import split_key
from python_mcp_server.core.sessions.registry import Claim, SessionRecord, SessionRegistry
from python_mcp_server.errors import SessionExistsError, SessionNotFoundError, StorageError
from python_mcp_server.infra.kernels.base import KernelLauncher

if TYPE_CHECKING:
    from python_mcp_server.core.sessions.kernel_client import KernelClient
    from python_mcp_server.core.sessions.session import KernelSession

logger = logging.getLogger(__name__)


def exists_error(key: str) -> SessionExistsError:
    return SessionExistsError(
        f"session {split_key(key)[1]!r} already exists (another server started it); use it "
        "by its session_id"
    )


class SessionClaims:
    """The registry as the session manager uses it (every call a no-op without one)."""

    def __init__(
        self, registry: SessionRegistry | None, launcher: KernelLauncher, start_wait: float
    ) -> None:
        self.registry = registry
        self._launcher = launcher
        #: How long to wait for another replica's start of a session.
        self._start_wait = start_wait

    async def claim(self, key: str, venv_name: str | None, description: str) -> Claim | None:
        """Claim a new session so that this server alone starts its kernel; SESSION_EXISTS
        when it exists or another server is starting it. None without a registry."""
        launcher = self._launcher
        if self.registry is None:
            if launcher.shared_sessions and await launcher.find_session_kernel(key) is not None:
                raise exists_error(key)
            return None
        owner, session_id = split_key(key)
        for _ in range(2):
            claim = await self.registry.claim(
                owner,
                session_id,
                kernel_id=launcher.kernel_id_for(key),
                environment=venv_name,
                description=description,
            )
            if claim.won:
                break
            if claim.record.state == "creating" or await launcher.find_session_kernel(key):
                raise exists_error(key)
            await self.registry.drop(claim.record)  # its kernel is gone (culled): free again
        else:
            raise exists_error(key)
        if await launcher.find_session_kernel(key) is not None:
            # A kernel from before the registry held the session: record it, start none.
            await self.registry.confirm(claim)
            raise exists_error(key)
        return claim

    async def abandon(self, claim: Claim | None) -> None:
        """The start failed: free the session id again."""
        if claim is not None and self.registry is not None:
            with contextlib.suppress(StorageError):
                await self.registry.drop(claim.record)

    async def confirm(self, claim: Claim | None, session: KernelSession) -> None:
        """Mark a won claim ready. A session deleted meanwhile, or a row that cannot be
        written, ends the kernel just started: nothing outlives its record."""
        if claim is None or self.registry is None:
            return
        try:
            confirmed = await self.registry.confirm(claim)
        except BaseException:
            await session.close(reason="its registry record could not be written")
            await self.abandon(claim)
            raise
        if not confirmed:
            await session.close(reason="the session was deleted while it started")
            raise SessionNotFoundError(
                f"session {session.session_id!r} was deleted (through another server) while "
                "its kernel started"
            )
        session.created_at = claim.record.created_at

    async def start_anew(
        self,
        key: str,
        start: Callable[[], Awaitable[KernelClient]],
        attach: Callable[[], Awaitable[KernelClient | None]],
    ) -> KernelClient | None:
        """The gateway gave the session's kernel up: one replica starts it anew (this one,
        when its reclaim of the row wins), the others wait and attach. None when the
        session has no row any more (it was deleted)."""
        if self.registry is None:
            return await start()
        owner, session_id = split_key(key)
        record = await self.registry.get(owner, session_id)
        if record is None:
            return None
        claim = await self.registry.reclaim(record) if record.state == "ready" else None
        if claim is None:  # another replica is starting it
            await self.settled(key)
            return await attach()
        try:
            return await start()
        finally:  # ready again either way: a failed start is tried again by the next call
            await self.registry.confirm(claim)

    async def settled(self, key: str) -> SessionRecord | None:
        """The session's row once no replica is starting it (None: no row, no registry, or
        no database: attaching then relies on the gateway alone)."""
        if self.registry is None:
            return None
        owner, session_id = split_key(key)
        try:
            return await self.registry.wait_settled(owner, session_id, self._start_wait)
        except StorageError as exc:
            logger.warning("session %s: registry not read: %s", key, exc.message)
            return None

    async def attached(self, key: str, record: SessionRecord | None, kernel_id: str) -> None:
        """A session was attached: give a kernel that has no row one."""
        if record is None and self.registry is not None:
            owner, session_id = split_key(key)
            with contextlib.suppress(StorageError):
                await self.registry.record_existing(owner, session_id, kernel_id)

    async def kernel_gone(self, key: str, record: SessionRecord | None = None) -> None:
        """The session's kernel no longer exists: neither does the session (this very row
        when given, so that a newer claim of the id is kept)."""
        if self.registry is None:
            return
        owner, session_id = split_key(key)
        with contextlib.suppress(StorageError):
            if record is not None:
                await self.registry.drop(record)
            else:
                await self.registry.remove(owner, session_id)

    async def delete(self, key: str) -> bool:
        """Delete the session's row first (DATABASE_UNAVAILABLE leaves everything as it
        was); True when it had one."""
        if self.registry is None:
            return False
        owner, session_id = split_key(key)
        return await self.registry.remove(owner, session_id)

    def use_hook(self, owner: str, session_id: str) -> Callable[[], None] | None:
        """What a session calls on each use (its last-used time, written later)."""
        registry = self.registry
        if registry is None:
            return None
        return lambda: registry.touch(owner, session_id)
