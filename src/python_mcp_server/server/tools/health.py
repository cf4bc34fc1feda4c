"""Health tools: get_kernel_health, check_kernel_responsiveness, health_check."""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.models.health import HealthCheck, KernelHealth, Responsiveness
from python_mcp_server.server.principals import session_ref
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.annotations import READ_ONLY

TAGS = {"health"}

SessionArg = Annotated[
    str | None, Field(description="Session to look at; default: the active session.")
]


def register(mcp: FastMCP, services: Services) -> None:
    manager = services.sessions
    monitor = services.health

    @mcp.tool(tags={"diagnostics"}, annotations=READ_ONLY)
    async def get_kernel_health(session_id: SessionArg = None) -> KernelHealth:
        """The session kernel's status (starting, idle, busy, unresponsive, dead), pid,
        uptime, memory, CPU, threads, open files, restarts and last error."""
        return await monitor.kernel_health(await manager.lookup(session_ref(session_id)))

    @mcp.tool(tags={"diagnostics"}, annotations=READ_ONLY)
    async def check_kernel_responsiveness(
        session_id: SessionArg = None,
        timeout: Annotated[
            float, Field(gt=0, le=60, description="Seconds to wait for the answer.")
        ] = 5.0,
    ) -> Responsiveness:
        """Time a kernel_info round trip to the session's kernel now (through the control
        channel while code runs, so a busy kernel still answers)."""
        return await monitor.probe(await manager.lookup(session_ref(session_id)), timeout)

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def health_check(
        session_id: Annotated[
            str | None, Field(description="Also report this session's kernel.")
        ] = None,
        venv_name: Annotated[
            str | None, Field(description="Also check that this environment's Python runs.")
        ] = None,
    ) -> HealthCheck:
        """The server's health: status and problems, version, Python version, settings
        (secrets masked), limits and sandbox in force, and metrics (executions, errors,
        success rate, average time, average kernel memory, sessions, uptime)."""
        session = await manager.lookup(session_ref(session_id)) if session_id is not None else None
        return await services.health_report.check(session, venv_name, manager.factory.python_for)
