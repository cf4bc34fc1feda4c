"""Wire models of code execution: what run_python_code returns."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from python_mcp_server.models.packages import DependenciesInfo
from python_mcp_server.models.safety import SafetyWarning
from python_mcp_server.models.wire import WireModel


class ExecutionErrorInfo(WireModel):
    """A Python exception raised by user code, or why the kernel could not finish it."""

    ename: str = Field(description="Exception class name, e.g. ZeroDivisionError.")
    evalue: str = Field(description="Exception message.")
    traceback: list[str] = Field(default_factory=list, description="Traceback lines, no ANSI.")
    code: str | None = Field(
        None,
        description="Stable code when the failure is not a plain Python exception: "
        "KERNEL_DIED, MEMORY_LIMIT_EXCEEDED, EXECUTION_TIMEOUT, DISK_FULL, SESSION_CLOSED.",
    )


class KernelReplacement(WireModel):
    """The session's kernel was replaced since the previous result, or during this call."""

    reason: str = Field(description="Why: how the old kernel ended, or that it hung.")
    replaced_at: datetime = Field(description="When the (last) new kernel took over.")
    times: int = Field(1, description="Replacements this result reports.")
    restored_variables: list[str] | None = Field(
        None, description="Variables the last automatic snapshot put back (MCP_AUTO_SNAPSHOT)."
    )


class OutputItem(WireModel):
    """One rich display: its MIME type, and its text or the saved file's workspace path."""

    mime_type: str
    text: str | None = None
    path: str | None = Field(None, description="Workspace-relative path of the saved file.")


class ExecutionResult(WireModel):
    """The outcome of running code in a session. A Python error is status "error", not a
    tool error."""

    status: Literal["ok", "error", "timeout"]
    stdout: str = ""
    stderr: str = ""
    result: str | None = Field(None, description="text/plain of the last expression, if any.")
    error: ExecutionErrorInfo | None = None
    outputs: list[OutputItem] = Field(default_factory=list)
    execution_count: int | None = Field(
        None, exclude=True, description="The kernel's execution counter (not sent)."
    )
    execution_time: float = Field(
        0.0,
        exclude_if=lambda seconds: seconds < 1.0,
        description="Seconds from request to completion; sent when at least one second.",
    )
    session_id: str
    execution_id: str
    truncated: bool = Field(
        False,
        description="Whether output was cut in this result: a stream past "
        "MCP_MAX_OUTPUT_CHARS, or the result past MCP_MAX_RESULT_CHARS.",
    )
    stdout_path: str | None = Field(None, description="File with the full stdout when cut.")
    stderr_path: str | None = Field(None, description="File with the full stderr when cut.")
    kernel_restarted: bool = Field(
        False,
        description="The session's kernel was replaced during this call or since the previous "
        "result; its variables were lost (unless restored_variables lists them).",
    )
    kernel_replacement: KernelReplacement | None = Field(
        None, description="When kernel_restarted: why the kernel was replaced, what was restored."
    )
    code_ran: bool = Field(
        True,
        description="Whether the kernel began running this code. False: it never reached a "
        "live kernel (the session closed, or no kernel could be started).",
    )
    message: str | None = Field(None, description="What the server did, in words.")
    dependencies_info: DependenciesInfo | None = Field(
        None, description="MCP_AUTO_INSTALL: imports that were missing and what was installed."
    )
    new_files: list[str] = Field(
        default_factory=list, description="Workspace files this execution created or changed."
    )
    restored_variables: list[str] | None = Field(
        None,
        description="After a kernel crash with MCP_AUTO_SNAPSHOT on: variables restored "
        "from the last snapshot.",
    )
    warnings: list[SafetyWarning] = Field(
        default_factory=list, description="Advisory safety-check findings (MCP_SAFETY_MODE)."
    )
