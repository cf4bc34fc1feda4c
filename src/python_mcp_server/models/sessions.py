"""Wire models of session management tools."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from python_mcp_server.models.wire import WireModel

#: One vocabulary for list_sessions and get_kernel_health: starting (its kernel is being
#: started or replaced), idle, busy (running code), unresponsive (did not answer the last
#: health probe), dead (its kernel ended and was not replaced yet), closing (being
#: deleted, reaped or shut down).
SessionStatus = Literal["starting", "idle", "busy", "unresponsive", "dead", "closing"]


class SessionInfo(WireModel):
    """One session as list_sessions shows it."""

    session_id: str
    description: str = ""
    status: SessionStatus = Field(
        description="starting, idle, busy, unresponsive, dead or closing: the same word "
        "get_kernel_health gives."
    )
    created_at: datetime
    last_used: datetime
    execution_count: int = Field(description="Executions run in this session.")
    kernel_pid: int | None = Field(None, description="Kernel process id on this machine.")
    kernel_id: str | None = Field(
        None,
        description="The kernel's id on the gateway, the same from every replica (kernels on "
        "a gateway with the session registry); null otherwise.",
    )
    active: bool = Field(description="Whether calls without session_id go to this session.")
    restarts: int = Field(0, description="Kernel restarts since the session was created.")
    waiting_calls: int = Field(0, description="Executions waiting for the running one to end.")
    venv_name: str | None = Field(None, description="Environment whose interpreter it runs.")
    network: str | None = Field(
        None,
        description="The session's own kernel network policy when it asked for one "
        "(e.g. `deny`, `allowlist (pypi.org)`); null: the server's (see health_check).",
    )


class SessionList(WireModel):
    """All live sessions."""

    sessions: list[SessionInfo]
    active_session_id: str
    total: int
    max_sessions: int


class NotKept(WireModel):
    """A variable a restart with preserve_state could not keep."""

    name: str
    reason: str = Field(description="Why: cannot be pickled, too large, failed to load...")


class PreservedState(WireModel):
    """What restart_kernel(preserve_state=True) carried over to the new kernel."""

    kept: list[str] = Field(description="Variables restored in the new kernel.")
    not_kept: list[NotKept] = Field(description="Variables that were lost, with why.")
    size_bytes: int = Field(0, description="Size of the pickled variables carried over.")
    source: Literal["kernel", "last_snapshot", "none"] = Field(
        description="kernel: saved just before the restart; last_snapshot: the kernel could "
        "not answer, so the last automatic snapshot was used; none: nothing could be saved."
    )


class SessionAction(WireModel):
    """The outcome of create, switch, delete, restart or interrupt."""

    session_id: str
    action: Literal[
        "created", "switched", "deleted", "restarted", "interrupted", "nothing_running"
    ] = Field(
        description="What happened; interrupt_kernel: nothing_running, interrupted, or "
        "restarted (the code ignored the interrupt)."
    )
    message: str
    session: SessionInfo | None = None
    preserved_state: PreservedState | None = Field(
        None, description="restart_kernel with preserve_state: what was kept and what was not."
    )


class PingResult(WireModel):
    """The server is up and its event loop answers."""

    pong: bool = Field(True, exclude_if=lambda _: False, description="Always true.")
    version: str
    server_time: datetime
    uptime_seconds: float
    sessions: int
