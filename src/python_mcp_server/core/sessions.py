"""SessionManager: the named sessions, their limits, the kernel pool and idle reaping.

Sessions are named by an explicit ``session_id`` (never the MCP transport session). Calls
that omit it use the *active* session, which ``switch_session`` sets server-wide: the MCP
clients this server meets cannot be told apart reliably (the fastmcp client's protocol
revision opens a new transport session per request), so per-client scoping would be a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass

from python_mcp_server.core.kernel_client import KernelClient
from python_mcp_server.core.kernel_factory import KernelFactory
from python_mcp_server.core.kernel_pool import KernelPool
from python_mcp_server.core.session import ExecutionConfig, KernelSession
from python_mcp_server.errors import (
    InvalidInputError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
)

logger = logging.getLogger(__name__)

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_SESSION = "default"


@dataclass(frozen=True)
class SessionsConfig:
    """Limits of the session manager."""

    max_sessions: int
    idle_timeout: float
    pool_size: int
    max_concurrent_executions: int


def validate_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID_PATTERN.match(session_id):
        raise InvalidInputError(
            f"session_id {session_id!r} is not valid: use 1-64 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return session_id


class SessionManager:
    """Creates, finds, lists and ends sessions."""

    def __init__(
        self,
        config: SessionsConfig,
        execution: ExecutionConfig,
        factory: KernelFactory,
    ) -> None:
        self._config = config
        self._execution = execution
        self._factory = factory
        self._pool = KernelPool(factory, config.pool_size)
        self._sessions: dict[str, KernelSession] = {}
        self._creating: dict[str, asyncio.Future[KernelSession]] = {}
        self._semaphore = asyncio.Semaphore(config.max_concurrent_executions)
        self._reaper: asyncio.Task[None] | None = None
        self.active_session_id = DEFAULT_SESSION
        self.started_at = time.time()

    @property
    def pool(self) -> KernelPool:
        return self._pool

    @property
    def factory(self) -> KernelFactory:
        return self._factory

    async def start(self) -> None:
        """Reap orphans of an earlier server, then fill the pool and start idle reaping."""
        reaped = await self._factory.launcher.reap_orphans()
        if reaped:
            logger.warning("ended %d kernel(s) left by an earlier server", reaped)
        self._pool.start()
        if self._config.idle_timeout > 0:
            self._reaper = asyncio.create_task(self._reap_idle_forever(), name="idle-reaper")

    async def aclose(self) -> None:
        """End every session and pooled kernel."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(
            self._pool.aclose(), *(s.close() for s in sessions), return_exceptions=True
        )

    # --- lookup -----------------------------------------------------------------------
    def resolve_id(self, session_id: str | None) -> str:
        return validate_session_id(session_id or self.active_session_id)

    def get(self, session_id: str | None) -> KernelSession:
        """The live session, or SESSION_NOT_FOUND."""
        name = self.resolve_id(session_id)
        session = self._sessions.get(name)
        if session is None:
            raise SessionNotFoundError(
                f"no session {name!r}; create it with create_session or list_sessions to see "
                "what exists"
            )
        return session

    async def get_or_create_default(self, session_id: str | None) -> KernelSession:
        """The named session; the default session is created on first use."""
        name = self.resolve_id(session_id)
        if name in self._sessions:
            return self._sessions[name]
        if name == DEFAULT_SESSION:
            with contextlib.suppress(SessionExistsError):
                return await self.create(name, description="default session")
            return self._sessions[name]
        return self.get(name)

    def all(self) -> list[KernelSession]:
        return sorted(self._sessions.values(), key=lambda s: s.created_at)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    # --- lifecycle --------------------------------------------------------------------
    async def create(
        self, session_id: str, *, description: str = "", venv_name: str | None = None
    ) -> KernelSession:
        name = validate_session_id(session_id)
        if name in self._sessions or name in self._creating:
            raise SessionExistsError(f"session {name!r} already exists")
        if len(self._sessions) + len(self._creating) >= self._config.max_sessions:
            raise SessionLimitError(
                f"{self._config.max_sessions} sessions are open, the most allowed "
                "(MCP_MAX_SESSIONS); delete one first"
            )
        future: asyncio.Future[KernelSession] = asyncio.get_running_loop().create_future()
        self._creating[name] = future
        try:
            client = await self._new_kernel(venv_name, name)
            session = KernelSession(
                name,
                client,
                config=self._execution,
                semaphore=self._semaphore,
                kernel_source=self._replacement_kernel,
                description=description,
                venv_name=venv_name,
            )
            self._sessions[name] = session
            future.set_result(session)
            return session
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._creating[name]

    async def delete(self, session_id: str) -> KernelSession:
        name = validate_session_id(session_id)
        session = self._sessions.pop(name, None)
        if session is None:
            raise SessionNotFoundError(f"no session {name!r}")
        await session.close()
        if self.active_session_id == name:
            self.active_session_id = DEFAULT_SESSION
        return session

    def switch(self, session_id: str) -> KernelSession:
        session = self.get(session_id)
        self.active_session_id = session.session_id
        return session

    async def _new_kernel(self, venv_name: str | None, label: str) -> KernelClient:
        if venv_name is None:
            pooled = self._pool.take()
            if pooled is not None:
                return pooled
        return await self._factory.start(venv_name, label)

    async def _replacement_kernel(self, session: KernelSession) -> KernelClient:
        return await self._new_kernel(session.venv_name, session.session_id)

    async def _reap_idle_forever(self) -> None:
        period = max(1.0, min(60.0, self._config.idle_timeout / 4))
        while True:
            await asyncio.sleep(period)
            await self.reap_idle()

    async def reap_idle(self) -> list[str]:
        """End sessions unused for longer than the idle timeout; return their ids."""
        limit = self._config.idle_timeout
        if limit <= 0:
            return []
        now = time.monotonic()
        idle = [
            s.session_id
            for s in self._sessions.values()
            if not s.busy and now - s.last_used_monotonic > limit
        ]
        for name in idle:
            with contextlib.suppress(SessionNotFoundError):
                await self.delete(name)
                logger.info("session %s ended after being idle", name)
        return idle
