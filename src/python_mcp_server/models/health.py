"""Wire models of health: get_kernel_health, check_kernel_responsiveness, health_check."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from python_mcp_server.models.sessions import SessionStatus
from python_mcp_server.models.wire import WireModel

KernelStatus = SessionStatus
ServerStatus = Literal["healthy", "degraded", "unhealthy"]


class KernelHealth(WireModel):
    """One session's kernel as the health monitor sees it."""

    session_id: str
    status: KernelStatus = Field(
        description="starting (being started or restarted), idle, busy (running code), "
        "unresponsive (did not answer kernel_info), dead (ended and not restarted), closing "
        "(being deleted or shut down); list_sessions uses the same words."
    )
    pid: int | None = Field(None, description="Kernel process id; null for remote kernels.")
    uptime: float | None = Field(None, description="Seconds since the kernel process started.")
    memory_mb: float | None = Field(
        None, description="Resident memory (RSS) of the kernel's process tree, MiB."
    )
    cpu_percent: float | None = Field(
        None, description="CPU use of the process tree since the last sample, % of one core."
    )
    threads: int | None = Field(None, description="Threads of the kernel's process tree.")
    open_files: int | None = Field(None, description="Regular files the process tree has open.")
    fds: int | None = Field(None, description="File descriptors (files, sockets, pipes) open.")
    restarts: int = Field(0, description="Kernel replacements since the session was created.")
    auto_restarts: int = Field(
        0, description="Restarts by the health monitor counted against MCP_MAX_KERNEL_RESTARTS."
    )
    last_error: str | None = Field(None, description="Why the kernel last died or failed.")
    responsive: bool | None = Field(
        None, description="Result of the last kernel_info round trip (null: not probed yet)."
    )
    response_time: float | None = Field(None, description="Seconds of that round trip.")
    last_check: datetime | None = Field(None, description="When the monitor last probed it.")


class Responsiveness(WireModel):
    """A kernel_info round trip made now."""

    session_id: str
    responsive: bool
    response_time: float | None = Field(None, description="Seconds; null when no answer came.")
    channel: Literal["shell", "control"] = Field(
        description="shell when idle; control while code runs (shell waits for the code)."
    )
    busy: bool = Field(description="Whether the session was running code.")
    message: str


class HealthMetrics(WireModel):
    """Totals since the server started."""

    total_executions: int
    errors: int = Field(description="Executions that ended in error or timeout.")
    success_rate: float | None = Field(None, description="ok / total, 0 to 1; null before any.")
    average_execution_time: float | None = Field(None, description="Seconds per execution.")
    average_kernel_memory_mb: float | None = Field(None, description="Mean RSS of live kernels.")
    active_sessions: int
    uptime: float = Field(description="Seconds since the server started.")
    kernel_pool_ready: int = Field(0, description="Kernels ready in the pool for new sessions.")
    kernel_pool_depth: int = Field(
        0,
        description="Kernels the pool keeps ready: `MCP_KERNEL_POOL_BURST` where kernels "
        "fork from a template, `MCP_KERNEL_POOL_SIZE` otherwise.",
    )


class EnvironmentHealth(WireModel):
    """Whether an environment's interpreter runs."""

    venv_name: str
    ok: bool
    python_version: str | None = None
    error: str | None = None


class FileSystemSpace(WireModel):
    """Room left on one file system the server writes to."""

    name: str = Field(description="workspace or state (one entry when they share a disk).")
    free_bytes: int
    total_bytes: int
    full: bool = Field(description="Less than 1 MiB free: saving output or history fails.")


class DiskHealth(WireModel):
    """Whether the disk is full, and writes that failed because it was."""

    full: bool = Field(description="A file system the server writes to is full now.")
    file_systems: list[FileSystemSpace] = Field(default_factory=list)
    output_write_failures: int = Field(
        0, description="Executions whose output could not be saved (DISK_FULL) since start."
    )
    history_write_failures: int = Field(
        0, description="History records that could not be written since start."
    )
    last_failure: str | None = Field(None, description="The latest such failure, in words.")


class HealthCheck(WireModel):
    """The server's health: status, versions, settings (no secrets), limits, metrics."""

    status: ServerStatus = Field(
        description="healthy; degraded (works, but something needs attention: see problems); "
        "unhealthy (cannot serve: starting, stopping or its monitor failed)."
    )
    problems: list[str] = Field(default_factory=list)
    version: str
    python_version: str = Field(description="The server's Python.")
    kernel_launcher: str = Field(description="How kernels run: local, bwrap, gateway...")
    settings: dict[str, Any] = Field(description="Settings in force; secrets masked, no paths.")
    limits: dict[str, Any] = Field(description="Limits and sandbox in force.")
    metrics: HealthMetrics
    history_entries: int | None = Field(None, description="Executions in the history database.")
    kernel: KernelHealth | None = Field(None, description="The requested session's kernel.")
    environment: EnvironmentHealth | None = Field(None, description="The requested venv.")
    disk: DiskHealth | None = Field(
        None, description="Room on the workspace and state file systems; failed writes."
    )
    preload: dict[str, Any] = Field(
        default_factory=dict,
        description="MCP_KERNEL_PRELOAD: the modules, how they reach kernels (fork, start, "
        "none), the problem if the preload failed, and `unforked`: environments whose "
        "kernels import it as they start instead of forking, with the reason (one installs "
        "a module the fork template imported).",
    )
