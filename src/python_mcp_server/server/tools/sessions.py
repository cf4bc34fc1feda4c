"""Session tools: create, switch, list, delete, restart, interrupt, ping."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated, Literal

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server import __version__
from python_mcp_server.core.execution.interrupts import InterruptOutcome, interrupt_running
from python_mcp_server.core.sessions.listing import ListedSession
from python_mcp_server.core.sessions.listing import list_sessions as list_sessions_of
from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.core.sessions.owners import new_session_id
from python_mcp_server.core.sessions.session import KernelSession
from python_mcp_server.models.sessions import (
    PingResult,
    SessionAction,
    SessionInfo,
    SessionList,
)
from python_mcp_server.server.kernel_network import session_network
from python_mcp_server.server.principals import current_principal, session_ref
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.annotations import ACTS, ADDS, READ_ONLY, REPLACES, SETS

TAGS = {"sessions"}

INTERRUPT_MESSAGES: dict[InterruptOutcome, str] = {
    "nothing_running": "nothing was running",
    "interrupted": "the running code was interrupted; variables stay",
    "restarted": "the code ignored the interrupt, so the kernel was restarted; "
    "its variables are lost",
}

SessionIdArg = Annotated[
    str, Field(description="Session name: 1-64 letters, digits, '.', '_' or '-'.")
]
OptionalSessionIdArg = Annotated[
    str | None, Field(description="Session name; default: the active session.")
]


def session_info(session: KernelSession, manager: SessionManager) -> SessionInfo:
    return SessionInfo(
        session_id=session.session_id,
        description=session.description,
        status=session.status,
        created_at=session.created_at,
        last_used=session.last_used,
        execution_count=session.execution_count,
        kernel_pid=session.kernel_pid,
        kernel_id=session.client.kernel.kernel_id if session.client.kernel.shared else None,
        active=session.session_id == manager.active_id(session.owner),
        restarts=session.restart_count,
        waiting_calls=session.waiting_calls,
        venv_name=session.venv_name,
        network=session.network.describe() if session.network else None,
    )


def listed_info(entry: ListedSession, manager: SessionManager, owner: str) -> SessionInfo:
    """A list_sessions row: live details where this server has the session."""
    live = entry.live
    return SessionInfo(
        session_id=entry.session_id,
        description=entry.description,
        status=entry.status,
        created_at=entry.created_at,
        last_used=entry.last_used,
        execution_count=live.execution_count if live else 0,
        kernel_pid=live.kernel_pid if live else None,
        kernel_id=entry.kernel_id,
        active=entry.session_id == manager.active_id(owner),
        restarts=live.restart_count if live else 0,
        waiting_calls=live.waiting_calls if live else 0,
        venv_name=entry.venv_name,
        network=live.network.describe() if live and live.network else None,
    )


def register(mcp: FastMCP, services: Services) -> None:
    manager = services.sessions
    max_sessions = services.settings.max_sessions

    idle = services.settings.session_idle_timeout
    lifetime = (
        f"A session ends after {idle:g} s without use; then calls naming it fail with "
        "SESSION_NOT_FOUND and a new one must be created."
        if idle > 0
        else "Sessions live until deleted or the server stops."
    )

    @mcp.tool(
        tags=TAGS,
        annotations=ADDS,
        description="Start a new session with its own kernel and return its session_id "
        "(leave session_id out for a new opaque one). Sessions are yours: other callers "
        f"neither see nor reach them. {lifetime}",
    )
    async def create_session(
        session_id: Annotated[
            str | None,
            Field(
                description="Name for the session (1-64 letters, digits, '.', '_' or '-'); "
                "default: a new opaque id."
            ),
        ] = None,
        description: Annotated[
            str, Field(max_length=500, description="What the session is for (list_sessions).")
        ] = "",
        venv_name: Annotated[
            str | None,
            Field(
                description="Environment whose Python the kernel runs (see list_venvs); "
                "default: the default environment."
            ),
        ] = None,
        network: Annotated[
            Literal["deny", "allowlist", "allow"] | None,
            Field(
                description="The kernel's network: `deny`, `allowlist` or `allow`; at most "
                "the server's MCP_KERNEL_NETWORK (wider is NETWORK_POLICY_REFUSED); "
                "default: the server's."
            ),
        ] = None,
        network_domains: Annotated[
            list[str] | None,
            Field(
                max_length=100,
                description="Under `allowlist`: only these domains (each must be allowed by "
                "the server); default: the server's allowlist.",
            ),
        ] = None,
    ) -> SessionAction:
        environments = services.environments
        venv = None if venv_name in (None, environments.default_name) else venv_name
        if venv is not None:
            environments.python_for(venv)  # VENV_NOT_FOUND before any kernel starts
        access = session_network(services.launcher, network, network_domains)
        ref = session_ref(new_session_id() if session_id is None else session_id)
        session = await manager.create(ref, description=description, venv_name=venv, network=access)
        return SessionAction(
            session_id=session.session_id,
            action="created",
            message=f"session {session.session_id!r} is ready",
            session=session_info(session, manager),
        )

    @mcp.tool(tags=TAGS, annotations=SETS)
    async def switch_session(session_id: SessionIdArg) -> SessionAction:
        """Make one of your sessions the default for your calls that omit session_id."""
        ref = session_ref(session_id)
        await manager.lookup(ref)  # attaches a session another replica started
        session = manager.switch(ref)
        return SessionAction(
            session_id=session.session_id,
            action="switched",
            message=f"calls without session_id now go to {session.session_id!r}",
            session=session_info(session, manager),
        )

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def list_sessions() -> SessionList:
        """Your live sessions with their status, kernel pid, counts and which is active."""
        owner = current_principal()
        mine = await list_sessions_of(manager, owner)
        return SessionList(
            sessions=[listed_info(entry, manager, owner) for entry in mine],
            active_session_id=manager.active_id(owner),
            total=len(mine),
            max_sessions=max_sessions,
        )

    @mcp.tool(tags=TAGS, annotations=REPLACES)
    async def delete_session(session_id: SessionIdArg) -> SessionAction:
        """End a session; its kernel process and everything it started end too."""
        deleted = await manager.delete(session_ref(session_id))
        return SessionAction(
            session_id=deleted,
            action="deleted",
            message=f"session {deleted!r} ended and its kernel was shut down",
        )

    @mcp.tool(tags=TAGS, annotations=ACTS)
    async def restart_kernel(
        session_id: OptionalSessionIdArg = None,
        preserve_state: Annotated[
            bool,
            Field(
                description="Keep the variables that can be pickled (dill): saved before the "
                "restart, loaded after it; the result lists what was kept and what was not."
            ),
        ] = False,
    ) -> SessionAction:
        """Replace the session's kernel with a fresh one; its variables are cleared unless
        preserve_state is true."""
        session = await manager.lookup(session_ref(session_id))
        kept = "kept what could be pickled" if preserve_state else "variables cleared"
        services.notebook_recorder.note(
            session.key, f"*Kernel replaced:* restart requested ({kept})"
        )
        if not preserve_state:
            await session.restart()
            services.snapshots.forget(session.key)  # a crash must not undo the clear
            return SessionAction(
                session_id=session.session_id,
                action="restarted",
                message="the kernel was restarted; variables were cleared",
                session=session_info(session, manager),
            )
        preserved = await services.snapshots.restart_preserving(session)
        lost = f"; {len(preserved.not_kept)} could not be kept" if preserved.not_kept else ""
        return SessionAction(
            session_id=session.session_id,
            action="restarted",
            message=f"the kernel was restarted; {len(preserved.kept)} variable(s) kept{lost}",
            session=session_info(session, manager),
            preserved_state=preserved,
        )

    @mcp.tool(tags=TAGS, annotations=SETS)
    async def interrupt_kernel(session_id: OptionalSessionIdArg = None) -> SessionAction:
        """Stop the code running in the session. action says what happened:
        nothing_running; interrupted (KeyboardInterrupt ended it, variables stay); or
        restarted (it ignored the interrupt for MCP_INTERRUPT_GRACE seconds, so the kernel
        was replaced and its variables are lost)."""
        session = await manager.lookup(session_ref(session_id))
        settings = services.settings
        outcome = await interrupt_running(
            session, grace=settings.interrupt_grace, restart_within=settings.kernel_start_timeout
        )
        return SessionAction(
            session_id=session.session_id,
            action=outcome,
            message=INTERRUPT_MESSAGES[outcome],
            session=session_info(session, manager),
        )

    @mcp.tool(tags={"diagnostics"}, annotations=READ_ONLY)
    async def ping() -> PingResult:
        """Answer at once, even while code runs: the server and its event loop are alive."""
        return PingResult(
            version=__version__,
            server_time=datetime.now(timezone.utc),
            uptime_seconds=round(time.time() - manager.started_at, 3),
            sessions=len(manager.all(current_principal())),
        )
