"""History tools: get_execution_history, clear_execution_history."""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.core.sessions.manager import validate_session_id
from python_mcp_server.models.history import HistoryCleared, HistoryList, HistoryStatus
from python_mcp_server.server.principals import current_principal
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.annotations import READ_ONLY, REPLACES

TAGS = {"history"}


def register(mcp: FastMCP, services: Services) -> None:
    history = services.history

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def get_execution_history(
        limit: Annotated[int, Field(ge=1, le=1000, description="Most entries returned.")] = 20,
        session_id: Annotated[
            str | None, Field(description="Only this session's executions.")
        ] = None,
        status: Annotated[
            HistoryStatus | None, Field(description="Only executions that ended so.")
        ] = None,
    ) -> HistoryList:
        """Past executions, newest first: code, status, stdout/stderr excerpts, error,
        start, end and duration. Kept across server restarts (MCP_MAX_HISTORY newest)."""
        if session_id is not None:
            validate_session_id(session_id)
        entries, total = await history.query(
            limit=limit, session_id=session_id, status=status, owner=current_principal()
        )
        return HistoryList(
            entries=entries,
            count=len(entries),
            total=total,
            max_history=history.config.max_history,
        )

    @mcp.tool(tags=TAGS, annotations=REPLACES)
    async def clear_execution_history(
        session_id: Annotated[
            str | None, Field(description="Clear only this session's; default: everything.")
        ] = None,
    ) -> HistoryCleared:
        """Delete recorded executions (one session's, or all); returns cleared_count."""
        if session_id is not None:
            validate_session_id(session_id)
        cleared = await history.clear(session_id, owner=current_principal())
        return HistoryCleared(cleared_count=cleared, session_id=session_id)
