"""Wire models of the execution history: get_execution_history, clear_execution_history."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from python_mcp_server.models.wire import WireModel

HistoryStatus = Literal["ok", "error", "timeout"]


class HistoryEntry(WireModel):
    """One recorded execution."""

    execution_id: str
    session_id: str
    code: str = Field(description="The code that ran (cut at 100,000 characters).")
    status: HistoryStatus
    stdout: str = Field("", description="The first 2,000 characters of stdout.")
    stderr: str = Field("", description="The first 2,000 characters of stderr.")
    error: str | None = Field(None, description="`ExceptionName: message` when it failed.")
    started: datetime
    finished: datetime
    duration: float = Field(description="Seconds from request to completion.")


class HistoryList(WireModel):
    """Recorded executions, newest first."""

    entries: list[HistoryEntry]
    count: int = Field(description="Entries returned.")
    total: int = Field(description="Entries stored that match the filters.")
    max_history: int = Field(description="Entries kept at most (MCP_MAX_HISTORY).")


class HistoryCleared(WireModel):
    """The outcome of clear_execution_history."""

    cleared_count: int
    session_id: str | None = Field(None, description="The session cleared; null: all of them.")
