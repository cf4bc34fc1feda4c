"""What ``list_sessions`` shows: this server's sessions, or every replica's from the registry.

Without a registry (kernels this server owns) the list is the session manager's. With
one, the registry's rows are the list, so every replica shows the same sessions of a
principal with the same created time: a session this server has attached shows its live
state; one it has not, the state the gateway reports for its kernel (one request each,
together). A row whose kernel the gateway no longer has (deleted, or culled when idle) is
dropped, not listed. Reading the rows needs the database: DATABASE_UNAVAILABLE otherwise.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.core.sessions.owners import session_key
from python_mcp_server.core.sessions.registry import SessionRecord
from python_mcp_server.core.sessions.session import KernelSession
from python_mcp_server.models.sessions import SessionStatus

#: The gateway's execution_state words in the status vocabulary of list_sessions. A
#: gateway's "starting" is not among them: it only means the gateway's own server has not
#: yet seen a status message from the kernel (Enterprise Gateway 3.3 keeps saying it
#: for kernels other replicas use), while a registry row that is not "creating" says a
#: replica already had the kernel answer; so it reads as idle.
GATEWAY_STATES: dict[str, SessionStatus] = {
    "busy": "busy",
    "restarting": "starting",
    "autorestarting": "starting",
    "dead": "dead",
}


@dataclass(frozen=True)
class ListedSession:
    """One row of list_sessions; ``live`` is the session when this server has it."""

    session_id: str
    status: SessionStatus
    created_at: datetime
    last_used: datetime
    description: str
    venv_name: str | None
    kernel_id: str | None
    live: KernelSession | None


def _from_live(session: KernelSession) -> ListedSession:
    return ListedSession(
        session_id=session.session_id,
        status=session.status,
        created_at=session.created_at,
        last_used=session.last_used,
        description=session.description,
        venv_name=session.venv_name,
        kernel_id=None,
        live=session,
    )


async def _from_record(manager: SessionManager, record: SessionRecord) -> ListedSession | None:
    key = session_key(record.owner, record.session_id)
    live = next((s for s in manager.all(record.owner) if s.key == key), None)
    status: SessionStatus
    if live is not None:
        status = live.status
    elif record.state == "creating":
        status = "starting"
    else:
        kernel = await manager.factory.launcher.find_session_kernel(key)
        if kernel is None:
            await manager.claims.kernel_gone(key, record)
            return None
        status = GATEWAY_STATES.get(await kernel.reported_state() or "", "idle")
    last_used = record.last_used
    if live is not None and live.last_used > last_used:
        last_used = live.last_used
    return ListedSession(
        session_id=record.session_id,
        status=status,
        created_at=record.created_at,
        last_used=last_used,
        description=record.description,
        venv_name=record.environment,
        kernel_id=record.kernel_id,
        live=live,
    )


async def list_sessions(manager: SessionManager, owner: str) -> list[ListedSession]:
    """The principal's sessions, oldest first."""
    registry = manager.claims.registry
    if registry is None:
        return [_from_live(session) for session in manager.all(owner)]
    records = await registry.records(owner)
    listed = await asyncio.gather(*(_from_record(manager, r) for r in records))
    return [entry for entry in listed if entry is not None]
