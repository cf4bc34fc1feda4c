"""Compat health, history and safety tools: native results plus the fields others had.

``health_check(venvName?)`` adds the Node executors' camelCase fields; the history and
safety tools add the Chinese-language executor's (``history``, ``total_count``,
``retrieved_at``, ``cleared_at``, ``checked_at``). Both argument styles are accepted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.core.compat import compat_health, history_entry, pick
from python_mcp_server.core.safety.checker import check_code_safety as check
from python_mcp_server.core.sessions.manager import validate_session_id
from python_mcp_server.errors import InvalidInputError
from python_mcp_server.models.compat import (
    CompatHealthCheck,
    CompatHistoryCleared,
    CompatHistoryList,
    CompatSafetyResult,
)
from python_mcp_server.models.history import HistoryStatus
from python_mcp_server.server.principals import current_principal, session_ref
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.compat import compat_tool

SessionArg = Annotated[str | None, Field(description="Native style: only this session.")]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def register(mcp: FastMCP, services: Services) -> None:
    manager = services.sessions
    history = services.history
    mode = services.settings.safety_mode

    @compat_tool(mcp)
    async def health_check(
        venvName: Annotated[
            str | None, Field(description="Also check that this environment's Python runs.")
        ] = None,
        venv_name: Annotated[str | None, Field(description="Same as venvName.")] = None,
        session_id: Annotated[
            str | None, Field(description="Also report this session's kernel.")
        ] = None,
    ) -> CompatHealthCheck:
        """Server health and metrics (MCP Python Executor compatible, and native).

        status, version, pythonVersion, config and metrics {totalExecutions, totalErrors,
        successRate, averageExecutionTimeMs, averageMemoryUsageMb}, with the native report.
        """
        venv = pick("venvName", venvName, venv_name)
        session = await manager.lookup(session_ref(session_id)) if session_id is not None else None
        report = await services.health_report.check(session, venv, manager.factory.python_for)
        return compat_health(report, sum(1 for s in manager.all() if s.busy))

    @compat_tool(mcp)
    async def get_execution_history(
        limit: Annotated[int, Field(ge=1, le=1000, description="Most entries returned.")] = 20,
        session_id: SessionArg = None,
        status: Annotated[HistoryStatus | None, Field(description="Native style.")] = None,
    ) -> CompatHistoryList:
        """Past executions, newest first (Python executor compatible, and native)."""
        if session_id is not None:
            validate_session_id(session_id)
        entries, total = await history.query(
            limit=limit, session_id=session_id, status=status, owner=current_principal()
        )
        items = [history_entry(entry) for entry in entries]
        return CompatHistoryList(
            history=items,
            total_count=total,
            retrieved_at=_now(),
            entries=items,
            count=len(items),
            total=total,
            max_history=history.config.max_history,
        )

    @compat_tool(mcp)
    async def clear_execution_history(session_id: SessionArg = None) -> CompatHistoryCleared:
        """Delete recorded executions; returns cleared_count and cleared_at."""
        if session_id is not None:
            validate_session_id(session_id)
        cleared = await history.clear(session_id, owner=current_principal())
        return CompatHistoryCleared(cleared_count=cleared, session_id=session_id, cleared_at=_now())

    @compat_tool(mcp)
    async def check_code_safety(
        code: Annotated[str, Field(description="Python source to check, not run.")],
    ) -> CompatSafetyResult:
        """Check code for dangerous calls and modules (advisory; Python executor compatible).

        Returns code, is_safe, warnings and checked_at; each warning is an object with
        line, col, category, message and severity.
        """
        if not code.strip():
            raise InvalidInputError("code is empty")
        report = check(code)
        return CompatSafetyResult(
            code=code,
            is_safe=report.is_safe,
            warnings=report.warnings,
            mode=mode,
            checked_at=_now(),
        )
