"""Adapters between the native core and the compat toolset's argument and result styles.

Pure translation: which session a ``venvName`` means, how a native ``ExecutionResult``
reads as the Node executors' error codes or the Chinese-language executor's return codes,
how history and health reports gain the field names those servers used. The tools in
``server/tools/compat*.py`` stay thin.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime

from python_mcp_server.core.sessions.manager import DEFAULT_SESSION, SessionManager
from python_mcp_server.core.sessions.owners import DEFAULT_OWNER, SessionRef
from python_mcp_server.errors import InvalidInputError, SessionExistsError, SessionNotFoundError
from python_mcp_server.models.compat import (
    CompatError,
    CompatErrorCode,
    CompatHealthCheck,
    CompatHealthMetrics,
    CompatHistoryEntry,
    ExecutePythonCodeResult,
    ExecutePythonResult,
)
from python_mcp_server.models.execution import ExecutionResult
from python_mcp_server.models.health import HealthCheck
from python_mcp_server.models.history import HistoryEntry
from python_mcp_server.models.packages import DependenciesInfo

#: Sessions the compat tools open for a named environment are called ``venv-<name>``.
VENV_SESSION_PREFIX = "venv-"
_VENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,58}$")

#: Exit statuses execute_python_code reports, as a subprocess would have ended.
RETURN_OK, RETURN_ERROR, RETURN_TIMEOUT, RETURN_KILLED = 0, 1, 124, 137


def pick(name: str, camel: str | None, snake: str | None) -> str | None:
    """One value from an argument accepted in both styles (``venvName`` / ``venv_name``)."""
    if camel is not None and snake is not None and camel != snake:
        raise InvalidInputError(f"{name} was given twice with different values")
    return camel if camel is not None else snake


def venv_session_id(venv_name: str) -> str:
    """The session a compat call naming an environment runs in."""
    if not _VENV_NAME.match(venv_name):
        raise InvalidInputError(
            f"venvName {venv_name!r} is not valid: use 1-59 letters, digits, '.', '_' or '-'"
        )
    return VENV_SESSION_PREFIX + venv_name


async def session_for_venv(
    manager: SessionManager, venv_name: str | None, default_venv: str, owner: str = DEFAULT_OWNER
) -> str | None:
    """The session id to run in for ``venvName``; None means the active session.

    No name, or the environment the active session runs: the active session. The default
    environment: the ``default`` session. Any other: its own session, ``venv-<name>``,
    whose kernel runs that environment's interpreter, created on first use.
    """
    if venv_name is None:
        return None
    active = SessionRef(owner, manager.active_id(owner))
    if active in manager and (manager.get(active).venv_name or default_venv) == venv_name:
        return None
    if venv_name == default_venv:
        return DEFAULT_SESSION
    session_id = venv_session_id(venv_name)
    try:
        session = await manager.lookup(SessionRef(owner, session_id))
    except SessionNotFoundError:
        with contextlib.suppress(SessionExistsError):
            await manager.create(
                SessionRef(owner, session_id),
                description=f"environment {venv_name} (compat)",
                venv_name=venv_name,
            )
        return session_id
    if (session.venv_name or default_venv) != venv_name:
        raise InvalidInputError(
            f"session {session_id!r} exists but does not run environment {venv_name!r}"
        )
    return session_id


def dependencies_text(info: DependenciesInfo | None) -> str | None:
    """Auto-install's report as the one line the Chinese executor gave."""
    if info is None or not (info.requested or info.failed):
        return None
    parts = []
    if info.installed:
        done = ", ".join(f"{p.name} {p.version}" if p.version else p.name for p in info.installed)
        parts.append(f"installed: {done}")
    if info.failed:
        parts.append(
            f"failed: {', '.join(info.failed)}" + (f" ({info.error})" if info.error else "")
        )
    return "; ".join(parts) or f"requested: {', '.join(info.requested)}"


def compat_error_code(result: ExecutionResult) -> CompatErrorCode | None:
    """The Node executors' code for a native result, or None when it succeeded."""
    if result.status == "ok":
        return None
    if result.status == "timeout":
        return "EXECUTION_TIMEOUT"
    code = result.error.code if result.error is not None else None
    if code in ("MEMORY_LIMIT_EXCEEDED", "EXECUTION_TIMEOUT"):
        return code  # type: ignore[return-value]
    return "PYTHON_ERROR"


def failure_text(result: ExecutionResult) -> str:
    """The failure as a traceback would print it (empty when the run succeeded)."""
    error = result.error
    if error is None:
        return result.message or ""
    lines = list(error.traceback)
    last = f"{error.ename}: {error.evalue}" if error.evalue else error.ename
    if not lines or lines[-1].strip() != last:
        lines.append(last)
    return "\n".join(line.rstrip("\n") for line in lines)


def to_execute_python(result: ExecutionResult, venv_name: str) -> ExecutePythonResult:
    """The Node executors' execute_python view of a native result."""
    code = compat_error_code(result)
    output = result.stdout.removesuffix("\n")
    if result.result is not None:
        output = f"{output}\n{result.result}" if output else result.result
    error = None
    if code is not None:
        error = CompatError(
            code=code,
            message=_error_message(result),
            traceback=result.error.traceback if result.error else [],
        )
    return ExecutePythonResult(
        success=code is None,
        output=output,
        stdout=result.stdout,
        stderr=result.stderr,
        result=result.result,
        error=error,
        executionTimeMs=round(result.execution_time * 1000, 3),
        venvName=venv_name,
        sessionId=result.session_id,
        executionId=result.execution_id,
    )


def execute_python_text(compat: ExecutePythonResult) -> str:
    """The text content the Node executors returned: the output, or the error."""
    if compat.success:
        return compat.output
    assert compat.error is not None
    parts = [f"Error executing Python code: {compat.error.code}: {compat.error.message}"]
    if compat.error.traceback:
        parts.append("\n".join(compat.error.traceback))
    if compat.output:
        parts.append(f"Output before the error:\n{compat.output}")
    return "\n".join(parts)


def to_execute_python_code(
    result: ExecutionResult,
    *,
    executed_at: datetime,
    completed_at: datetime,
    dependencies_info: str | None = None,
) -> ExecutePythonCodeResult:
    """The Chinese-language executor's execute_python_code view of a native result."""
    code = compat_error_code(result)
    stderr = result.stderr
    failure = failure_text(result) if code is not None else ""
    if failure:
        stderr = f"{stderr}{'' if not stderr or stderr.endswith(chr(10)) else chr(10)}{failure}\n"
    stdout = result.stdout
    if result.result is not None:
        stdout = f"{stdout}{result.result}\n"
    return ExecutePythonCodeResult(
        execution_id=result.execution_id,
        success=code is None,
        stdout=stdout,
        stderr=stderr,
        return_code=_return_code(result, code),
        execution_time=result.execution_time,
        dependencies_info=dependencies_info,
        executed_at=executed_at,
        completed_at=completed_at,
        error_code=code,
    )


def _return_code(result: ExecutionResult, code: CompatErrorCode | None) -> int:
    if code is None:
        return RETURN_OK
    if code == "EXECUTION_TIMEOUT":
        return RETURN_TIMEOUT
    died = result.error is not None and result.error.code in ("KERNEL_DIED",)
    if code == "MEMORY_LIMIT_EXCEEDED" or died:
        return RETURN_KILLED
    return RETURN_ERROR


def _error_message(result: ExecutionResult) -> str:
    error = result.error
    if error is None:
        return result.message or result.status
    text = f"{error.ename}: {error.evalue}" if error.evalue else error.ename
    if error.code == "KERNEL_DIED" and result.message:
        text = f"{text} ({result.message})"
    return text


def history_entry(entry: HistoryEntry) -> CompatHistoryEntry:
    """A native history entry with the Chinese executor's field names added."""
    return CompatHistoryEntry(
        **entry.model_dump(),
        success=entry.status == "ok",
        execution_time=entry.duration,
        executed_at=entry.started,
    )


def compat_health(report: HealthCheck, active_executions: int) -> CompatHealthCheck:
    """The native health report with the Node executors' camelCase fields added."""
    metrics = report.metrics
    rate = metrics.success_rate
    average = metrics.average_execution_time
    data = report.model_dump()
    data["metrics"] = CompatHealthMetrics(
        **metrics.model_dump(),
        totalExecutions=metrics.total_executions,
        totalErrors=metrics.errors,
        successRate=None if rate is None else round(rate * 100, 2),
        averageExecutionTimeMs=None if average is None else round(average * 1000, 3),
        averageMemoryUsageMb=metrics.average_kernel_memory_mb,
    )
    return CompatHealthCheck(
        **data,
        pythonVersion=f"Python {report.python_version}",
        config=report.settings,
        activeExecutions=active_executions,
    )
