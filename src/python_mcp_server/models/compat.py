"""Wire models of the compat toolset: the result shapes of the servers this one replaces.

Two families: the Node "MCP Python Executor" servers (camelCase, ``execute_python``,
``health_check``...) and the Chinese-language "Python executor" (snake_case,
``execute_python_code``...). Field names follow theirs exactly; fields they never had are
only added where the docs say so (docs/migration.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from python_mcp_server.models.health import HealthCheck, HealthMetrics
from python_mcp_server.models.history import HistoryCleared, HistoryEntry
from python_mcp_server.models.safety import SafetyCheckResult

#: The error codes the Node executors put in their results.
CompatErrorCode = Literal[
    "EXECUTION_TIMEOUT",
    "MEMORY_LIMIT_EXCEEDED",
    "PYTHON_ERROR",
    "INVALID_INPUT",
    "PACKAGE_INSTALLATION_ERROR",
    "INTERNAL_ERROR",
]


class CompatError(BaseModel):
    """Why an execution failed, with the Node executors' error code."""

    code: CompatErrorCode
    message: str = Field(description="`ExceptionName: message`, or what the server did.")
    traceback: list[str] = Field(default_factory=list, description="Traceback lines, no ANSI.")


class ExecutePythonResult(BaseModel):
    """``execute_python`` (Node executors): the text they returned plus structured fields."""

    success: bool
    output: str = Field(description="What the Node executors returned as text: the output.")
    stdout: str
    stderr: str
    result: str | None = Field(None, description="Value of the last expression, if any.")
    error: CompatError | None = None
    executionTimeMs: float = Field(description="Milliseconds the execution took.")
    venvName: str = Field(description="Environment the code ran in.")
    sessionId: str = Field(description="Session (kernel) the code ran in.")
    executionId: str


class ExecutePythonCodeResult(BaseModel):
    """``execute_python_code`` (Chinese-language executor), field for field."""

    execution_id: str
    success: bool
    stdout: str
    stderr: str = Field(description="Standard error, then the traceback when the code failed.")
    return_code: int = Field(
        description="0 success, 1 Python error, 124 timeout, 137 kernel died or out of memory."
    )
    execution_time: float = Field(description="Seconds.")
    dependencies_info: str | None = Field(
        None, description="Packages installed for this run by auto-install, if any."
    )
    executed_at: datetime
    completed_at: datetime
    error_code: CompatErrorCode | None = Field(
        None, description="Added by this server: the Node executors' code for the failure."
    )


class InstallPythonPackageResult(BaseModel):
    """``install_python_package`` (Chinese-language executor)."""

    package_name: str
    success: bool
    message: str
    installed_at: datetime
    version: str | None = Field(None, description="Added: the version now installed.")
    venv_name: str = Field(description="Added: the environment installed into.")
    error_code: CompatErrorCode | None = Field(
        None, description="Added: PACKAGE_INSTALLATION_ERROR when the install failed."
    )


class InstalledPackage(BaseModel):
    name: str
    version: str


class InstalledPackageList(BaseModel):
    """``list_installed_packages`` (Chinese-language executor)."""

    packages: list[InstalledPackage]
    total_count: int
    retrieved_at: datetime
    venv_name: str = Field(description="Added: the environment listed.")


class CompatHistoryEntry(HistoryEntry):
    """A history entry with both the native fields and the Chinese executor's."""

    compact_wire: ClassVar[bool] = False

    success: bool
    execution_time: float = Field(description="Seconds (the same as duration).")
    executed_at: datetime = Field(description="When it started (the same as started).")


class CompatHistoryList(BaseModel):
    """``get_execution_history``: the Chinese executor's shape plus the native fields."""

    history: list[CompatHistoryEntry]
    total_count: int = Field(description="Entries stored that match (the same as total).")
    retrieved_at: datetime
    entries: list[CompatHistoryEntry] = Field(description="Native name of `history`.")
    count: int
    total: int
    max_history: int


class CompatHistoryCleared(HistoryCleared):
    """``clear_execution_history``: cleared_count and cleared_at."""

    compact_wire: ClassVar[bool] = False

    cleared_at: datetime


class CompatSafetyResult(SafetyCheckResult):
    """``check_code_safety``: the Chinese executor's shape plus the native fields."""

    compact_wire: ClassVar[bool] = False

    code: str
    checked_at: datetime


class CompatHealthMetrics(HealthMetrics):
    """Native metrics plus the Node executors' camelCase ones."""

    compact_wire: ClassVar[bool] = False

    totalExecutions: int
    totalErrors: int
    successRate: float | None = Field(None, description="Percent, 0 to 100.")
    averageExecutionTimeMs: float | None = None
    averageMemoryUsageMb: float | None = None


class CompatHealthCheck(HealthCheck):
    """``health_check``: the native report plus the Node executors' fields."""

    compact_wire: ClassVar[bool] = False

    metrics: CompatHealthMetrics
    pythonVersion: str = Field(description="`Python 3.x.y`, as they reported it.")
    config: dict[str, Any] = Field(description="The settings in force (the same as settings).")
    activeExecutions: int = Field(description="Sessions running code now.")
