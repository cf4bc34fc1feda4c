"""SessionManager: the named sessions, their limits, the kernel pool and idle reaping.

Sessions are named by an explicit ``session_id`` (never the MCP transport session) and
belong to a principal: callers pass a ``SessionRef`` (owner + id) and the sessions are
keyed by ``owners.session_key``, so two principals' ``analysis`` are two sessions and one
never sees or reaches the other's. Calls that omit the id use the principal's *active*
session, which ``switch_session`` sets for that principal only.

With a launcher whose kernels are shared (replicas on one gateway), a session this server
does not know yet is looked up on the launcher and attached; stopping or idling only
detaches, and deleting ends the session for every server. The session registry
(``registry.py``, in the database replicas share) then decides which replica starts a
new session's kernel, and lists the same sessions on every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass

from python_mcp_server.core.sessions.claims import SessionClaims
from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_factory import KernelFactory
from python_mcp_server.core.sessions.kernel_pool import KernelPool
from python_mcp_server.core.sessions.owners import (
    DEFAULT_OWNER,
    SessionRef,
    SessionSpec,
    as_ref,
    session_key,
    split_key,
)
from python_mcp_server.core.sessions.pool_policy import PoolConfig
from python_mcp_server.core.sessions.registry import SessionRegistry
from python_mcp_server.core.sessions.session import (
    ExecutionConfig,
    KernelReplacedHook,
    KernelSession,
)
from python_mcp_server.errors import (
    InvalidInputError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
)
from python_mcp_server.infra.network.access import NetworkAccess

logger = logging.getLogger(__name__)

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_SESSION = "default"


@dataclass(frozen=True)
class SessionsConfig:
    """Limits of the session manager."""

    max_sessions: int
    idle_timeout: float
    pool: PoolConfig
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
        registry: SessionRegistry | None = None,
    ) -> None:
        self._config = config
        #: The shared record of sessions (shared launchers only) and its claims.
        self.claims = SessionClaims(registry, factory.launcher, factory.start_timeout * 2)
        self._execution = execution
        self._factory = factory
        self._pool = KernelPool(factory, config.pool)
        self._sessions: dict[str, KernelSession] = {}
        self._creating: dict[str, asyncio.Future[KernelSession]] = {}
        self._semaphore = asyncio.Semaphore(config.max_concurrent_executions)
        self._reaper: asyncio.Task[None] | None = None
        self._stop_reaping = asyncio.Event()
        #: Each principal's active session (``default`` when it never switched).
        self._active: dict[str, str] = {}
        self.started_at = time.time()
        #: Run, in order, after a session's dead or hung kernel was replaced.
        self.replacement_hooks: list[KernelReplacedHook] = []

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
        if self._factory.packages is not None:
            await self._factory.packages.clear()  # an earlier server's session folders
        if self.claims.registry is not None:
            await self.claims.registry.open()
        self._pool.start()
        if self._config.idle_timeout > 0:
            self._reaper = asyncio.create_task(self._reap_idle_forever(), name="idle-reaper")

    async def aclose(self) -> None:
        """End every session and pooled kernel."""
        if self._reaper is not None:
            # Stop between rounds, never mid-way: a session being ended is ended whole.
            self._stop_reaping.set()
            await self._reaper
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(
            self._pool.aclose(),
            *(self._release(s, "the server is stopping") for s in sessions),
            return_exceptions=True,
        )
        if self.claims.registry is not None:
            self.claims.registry.close()
        if self._factory.packages is not None:
            await self._factory.packages.clear()  # pooled kernels' folders too

    # --- lookup -----------------------------------------------------------------------
    @property
    def active_session_id(self) -> str:
        """The default principal's active session."""
        return self.active_id(DEFAULT_OWNER)

    def active_id(self, owner: str) -> str:
        """The session a principal's calls without session_id go to."""
        return self._active.get(owner, DEFAULT_SESSION)

    def resolve(self, spec: SessionSpec) -> SessionRef:
        """The ref with its id filled in (the owner's active session when omitted)."""
        ref = as_ref(spec)
        return SessionRef(
            ref.owner, validate_session_id(ref.session_id or self.active_id(ref.owner))
        )

    def resolve_id(self, spec: SessionSpec) -> str:
        """The session id a call names (the caller's active one when omitted)."""
        name = self.resolve(spec).session_id
        assert name is not None
        return name

    def _key(self, spec: SessionSpec) -> tuple[str, str]:
        ref = self.resolve(spec)
        assert ref.session_id is not None
        return ref.session_id, session_key(ref.owner, ref.session_id)

    def get(self, spec: SessionSpec) -> KernelSession:
        """The live session, or SESSION_NOT_FOUND."""
        name, key = self._key(spec)
        session = self._sessions.get(key)
        if session is None:
            raise SessionNotFoundError(self._not_found(name))
        return session

    def _not_found(self, name: str) -> str:
        idle = self._config.idle_timeout
        gone = f" (sessions end after {idle:g} s without use)" if idle > 0 else ""
        return (
            f"no session {name!r}{gone}; create one with create_session, or leave session_id "
            "out to use your default session"
        )

    async def get_or_create_default(self, spec: SessionSpec) -> KernelSession:
        """The named session; the caller's ``default`` session is created on first use."""
        name, key = self._key(spec)
        session = self._sessions.get(key) or await self._adopt(key)
        if session is not None:
            return session
        if name == DEFAULT_SESSION:
            pending = self._creating.get(key)
            if pending is not None:
                return await asyncio.shield(pending)
            owner = as_ref(spec).owner
            with contextlib.suppress(SessionExistsError):
                return await self.create(SessionRef(owner, name), description="default session")
            # Another replica (or call) created it first: attach once its kernel is there.
            return await self.lookup(SessionRef(owner, name))
        return self.get(spec)

    async def lookup(self, spec: SessionSpec) -> KernelSession:
        """The live session, attaching one another server started (shared kernels), or
        SESSION_NOT_FOUND."""
        _name, key = self._key(spec)
        session = self._sessions.get(key) or await self._adopt(key)
        return session if session is not None else self.get(spec)

    async def _adopt(self, name: str) -> KernelSession | None:
        """Attach the session's kernel when another server started it (replicas).

        A session another replica is starting right now is waited for (its registry row
        says so). The registry is consulted, not required: without the database, a kernel
        the gateway has is still attached (attaching never starts one).
        """
        if not self._factory.launcher.shared_sessions:
            return None
        pending = self._creating.get(name)
        if pending is not None:  # this server is starting it: that start's result
            with contextlib.suppress(Exception):
                return await asyncio.shield(pending)
            return None
        record = await self.claims.settled(name)
        client = await self._factory.attach(name)
        if client is None:
            if record is not None and record.state == "ready":
                await self.claims.kernel_gone(name, record)
            return None
        existing = self._sessions.get(name)
        if existing is not None:  # a concurrent call attached or created it first
            await client.close(kill=False)
            return existing
        session = self._session_for(
            name,
            client,
            description=record.description if record else "",
            venv_name=record.environment if record else None,
        )
        if record is not None:
            session.created_at = record.created_at
        await self.claims.attached(name, record, client.kernel.kernel_id)
        self._sessions[name] = session
        logger.info("session %s: attached its kernel %s", name, client.kernel.kernel_id)
        return session

    def all(self, owner: str | None = None) -> list[KernelSession]:
        """Every session (``owner`` given: only that principal's), oldest first."""
        sessions = self._sessions.values()
        mine = [s for s in sessions if owner is None or s.owner == owner]
        return sorted(mine, key=lambda s: s.created_at)

    def __contains__(self, spec: SessionSpec) -> bool:
        return self._key(spec)[1] in self._sessions

    # --- lifecycle --------------------------------------------------------------------
    async def create(
        self,
        spec: SessionRef | str,
        *,
        description: str = "",
        venv_name: str | None = None,
        network: NetworkAccess | None = None,
    ) -> KernelSession:
        """A new session; ``spec`` names it (a plain id: the default principal's)."""
        shown = validate_session_id(as_ref(spec).session_id or "")
        name = session_key(as_ref(spec).owner, shown)
        if name in self._sessions or name in self._creating:
            raise SessionExistsError(f"session {shown!r} already exists")
        if len(self._sessions) + len(self._creating) >= self._config.max_sessions:
            raise SessionLimitError(
                f"{self._config.max_sessions} sessions are open, the most allowed "
                "(MCP_MAX_SESSIONS); delete one first"
            )
        future: asyncio.Future[KernelSession] = asyncio.get_running_loop().create_future()
        self._creating[name] = future
        try:
            claim = await self.claims.claim(name, venv_name, description)
            try:
                client = await self._new_kernel(venv_name, name, network)
            except BaseException:
                await self.claims.abandon(claim)
                raise
            session = self._session_for(name, client, description, venv_name)
            session.network = network
            await self.claims.confirm(claim, session)
            self._sessions[name] = session
            future.set_result(session)
            return session
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._creating[name]

    async def delete(self, spec: SessionRef | str) -> str:
        """End a session and its kernel (for every server sharing it); returns its id."""
        shown, name = self._key(spec)
        registered = await self.claims.delete(name)  # first: a failure changes nothing
        session = self._sessions.pop(name, None)
        if session is not None:
            await session.close(reason="the session was deleted")
            await self._factory.release(name)
        else:
            kernel = await self._factory.launcher.find_session_kernel(name)
            if kernel is not None:
                await kernel.kill()  # started through another server: end it, no attaching
            elif not registered:
                raise SessionNotFoundError(self._not_found(shown))
        self._forget_active(name)
        return shown

    def _forget_active(self, key: str) -> None:
        owner, name = split_key(key)
        if self._active.get(owner) == name:
            del self._active[owner]

    def switch(self, spec: SessionRef | str) -> KernelSession:
        """Make the session its principal's default for calls without session_id."""
        session = self.get(spec)
        self._active[session.owner] = session.session_id
        return session

    async def _new_kernel(
        self, venv_name: str | None, label: str, network: NetworkAccess | None = None
    ) -> KernelClient:
        if venv_name is None and network is None:
            pooled = await self._pool.take_or_wait()
            if pooled is not None:
                self._factory.claim(pooled, label)
                return pooled
        return await self._factory.start(venv_name, label, network=network)

    def _session_for(
        self, key: str, client: KernelClient, description: str, venv_name: str | None
    ) -> KernelSession:
        owner, name = split_key(key)
        session = KernelSession(
            name,
            client,
            owner=owner,
            config=self._execution,
            semaphore=self._semaphore,
            kernel_source=self._replacement_kernel,
            description=description,
            venv_name=venv_name,
            on_replaced=self._kernel_replaced,
        )
        session.on_used = self.claims.use_hook(owner, name)
        return session

    async def _replacement_kernel(self, session: KernelSession) -> KernelClient:
        if not self._factory.launcher.shared_sessions:
            return await self._new_kernel(session.venv_name, session.key, session.network)
        # The kernel restarted in place (same id): attach to it again, unless it is gone.
        client = await self._factory.attach(session.key)
        if client is not None:
            return client
        if session.client.kernel.backend_gave_up():  # the gateway gave it up: start it anew
            key = session.key
            client = await self.claims.start_anew(
                key,
                lambda: self._factory.start(session.venv_name, key, network=session.network),
                lambda: self._factory.attach(key),
            )
            if client is not None:
                return client
        name = session.key
        if self._sessions.get(name) is session:
            del self._sessions[name]
        session.lifecycle.abandon("its kernel was deleted on the gateway")
        self._forget_active(name)
        await self.claims.kernel_gone(name)
        raise SessionNotFoundError(
            f"session {session.session_id!r} no longer exists: its kernel was deleted on the "
            "gateway (through another server, or by the gateway's idle culling)"
        )

    async def _release(self, session: KernelSession, reason: str) -> None:
        """Let go of a session at shutdown or idle: end its kernel, or, when kernels are
        shared with other servers, only detach (the session lives on for them)."""
        if self._factory.launcher.shared_sessions:
            await session.close(kill=False, reason=reason)
        else:
            await session.close(reason=reason)
            await self._factory.release(session.session_id)

    async def _kernel_replaced(self, session: KernelSession, reason: str) -> list[str] | None:
        restored: list[str] | None = None
        for hook in self.replacement_hooks:
            try:
                restored = await hook(session, reason) or restored
            except Exception:  # one failing step must not skip the others
                logger.exception("session %s: replacement hook failed", session.session_id)
        return restored

    async def _reap_idle_forever(self) -> None:
        period = max(1.0, min(60.0, self._config.idle_timeout / 4))
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_reaping.wait(), period)
            if self._stop_reaping.is_set():
                return
            try:
                await self.reap_idle()
            except Exception:  # keep reaping; one failed round must not stop it for good
                logger.exception("idle reaping failed")

    async def reap_idle(self) -> list[str]:
        """End (shared kernels: detach) sessions unused for longer than the idle timeout;
        return their ids."""
        limit = self._config.idle_timeout
        if limit <= 0:
            return []
        now = time.monotonic()
        idle = [
            s.key
            for s in self._sessions.values()
            if not s.busy and now - s.last_used_monotonic > limit
        ]
        for name in idle:
            if self._factory.launcher.shared_sessions:
                session = self._sessions.pop(name, None)
                if session is not None:
                    await self._release(session, "it was idle too long")
                    logger.info("session %s detached after being idle", name)
                continue
            session = self._sessions.get(name)
            if session is None or session.busy or session.held:
                continue  # a call came in meanwhile
            del self._sessions[name]
            self._forget_active(name)
            await session.close(reason="it was idle longer than MCP_SESSION_IDLE_TIMEOUT")
            await self._factory.release(name)
            logger.info("session %s ended after being idle", name)
        return idle
