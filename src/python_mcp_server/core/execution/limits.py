"""Which kernel limits are in force, and how a memory-limit failure reads in a result.

``KernelLimits`` is what ``health_check`` shows: the sandbox in use (and why not the one
asked for), the network policy, memory, file size and process limits, and CPU (the
per-execution timeout; RLIMIT_CPU would kill the kernel instead of interrupting it).
``MemoryLimitHook`` gives an execution that ran out of memory the stable code
MEMORY_LIMIT_EXCEEDED: a MemoryError the kernel survived, or a kernel death whose last
words were an allocation failure (the session then already runs a fresh kernel).
``DiskFullHook`` gives DISK_FULL to an execution whose output could not be saved because
the disk was full (the code ran; the session lives on), or whose own code failed with
``ENOSPC``, and counts it for ``health_check``.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from python_mcp_server.core.execution.service import ExecutionHook
from python_mcp_server.core.workspace.dirfd import is_disk_full
from python_mcp_server.core.workspace.disk import DiskWatch
from python_mcp_server.infra.kernels.base import KernelLauncher
from python_mcp_server.infra.kernels.limits import (
    MIB,
    LimitedLauncher,
    UnavailableLauncher,
    out_of_memory,
)
from python_mcp_server.infra.kernels.sandbox import BwrapLauncher
from python_mcp_server.models.execution import ExecutionErrorInfo

if TYPE_CHECKING:
    from python_mcp_server.core.execution.service import ExecutionRequest
    from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession

MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
DISK_FULL = "DISK_FULL"
#: How an ENOSPC raised by user code reads in its exception.
_DISK_FULL_MARKERS = ("[Errno 28]", "No space left on device", "Disk quota exceeded")


@dataclass(frozen=True)
class KernelLimits:
    """Isolation and limits of the kernels this server starts, as far as it enforces them."""

    sandbox: str
    sandbox_requested: str
    network: str
    memory_limit_mb: int | None
    file_size_limit_mb: int | None
    max_processes: int | None
    #: How the process limit is enforced: "cgroup pids.max", "RLIMIT_NPROC", or None.
    process_limit_by: str | None
    cpu: str
    warnings: tuple[str, ...] = ()
    #: How the memory limit holds: "cgroup" (tmpfs counted), "rlimit+tmpfs-size" (the
    #: sandbox's tmpfs sized inside the limit), "rlimit" (no sandbox), or None.
    memory_limit_by: str | None = None
    #: Who kernel code runs as, e.g. "nobody (uid 65534)".
    kernel_user: str | None = None
    #: Whether the seccomp filter is in force.
    seccomp: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data


def _mib(value: int | None) -> int | None:
    return None if value is None else value // MIB


def describe_limits(
    launcher: KernelLauncher, *, requested: str, execution_timeout: float
) -> KernelLimits:
    """The limits a launcher enforces, in words health can show."""
    cpu = f"per-execution timeout (default {execution_timeout:g} s), then interrupt"
    if not isinstance(launcher, LimitedLauncher):
        return KernelLimits(
            sandbox=launcher.name,
            sandbox_requested=requested,
            network="set by the kernel host",
            memory_limit_mb=None,
            file_size_limit_mb=None,
            max_processes=None,
            process_limit_by=None,
            cpu=cpu,
            warnings=(f"kernels run on a {launcher.name}; its own limits apply",),
        )
    limits = launcher.limits
    warnings: list[str] = []
    if launcher.sandbox_warning:
        warnings.append(launcher.sandbox_warning)
    if isinstance(launcher, UnavailableLauncher):
        return KernelLimits(
            sandbox="unavailable",
            sandbox_requested=requested,
            network="no kernels start",
            memory_limit_mb=_mib(limits.memory_bytes),
            file_size_limit_mb=_mib(limits.file_size_bytes),
            max_processes=None,
            process_limit_by=None,
            cpu=cpu,
            warnings=tuple(warnings),
        )
    network: str
    process_limit_by: str | None = None
    memory_limit_by = "rlimit"
    kernel_user = _server_user()
    seccomp = False
    max_processes = limits.max_processes
    if isinstance(launcher, BwrapLauncher):
        network = launcher.config.network.describe()
        memory_limit_by = launcher.memory_limit_by
        confinement = launcher.config.confinement
        seccomp = confinement.seccomp_file is not None
        if confinement.user is not None:
            kernel_user = f"{confinement.user.name} (uid {confinement.user.uid})"
        else:
            kernel_user += ", in its own user namespace"
        max_processes = launcher.max_tasks
        if launcher.cgroups is not None and launcher.cgroups.pids:
            process_limit_by = "cgroup pids.max"
        elif os.geteuid() != 0:
            process_limit_by = "RLIMIT_NPROC"
        else:
            warnings.append(
                "the process limit is not enforced: the server runs as root and no "
                "writable cgroup pids controller was found"
            )
    else:
        network = "unrestricted (no sandbox)"
        warning = (
            "kernels are not sandboxed: they see the whole file system, the network and "
            "the server's processes"
        )
        if os.geteuid() == 0:
            warning += "; they run as root, so they could raise their own limits"
        warnings.append(warning)
    return KernelLimits(
        sandbox=launcher.name if isinstance(launcher, BwrapLauncher) else "none",
        sandbox_requested=requested,
        network=network,
        memory_limit_mb=_mib(limits.memory_bytes),
        file_size_limit_mb=_mib(limits.file_size_bytes),
        max_processes=max_processes if process_limit_by else None,
        process_limit_by=process_limit_by,
        cpu=cpu,
        warnings=tuple(warnings),
        memory_limit_by=memory_limit_by,
        kernel_user=kernel_user,
        seccomp=seccomp,
    )


def _server_user() -> str:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return f"{name} (uid {uid}, the server's user)"


class MemoryLimitHook(ExecutionHook):
    """ExecutionHook: marks out-of-memory failures with MEMORY_LIMIT_EXCEEDED."""

    def __init__(self, memory_limit_mb: int | None) -> None:
        self.memory_limit_mb = memory_limit_mb

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        result = outcome.result
        error = result.error
        if error is None:
            return
        limit = (
            f"the kernel's memory limit of {self.memory_limit_mb} MiB (MCP_MAX_MEMORY_MB)"
            if self.memory_limit_mb
            else "the memory available"
        )
        if error.ename == "MemoryError" and error.code is None:
            error.code = MEMORY_LIMIT_EXCEEDED
            note = f"an allocation exceeded {limit}; the session keeps its other variables"
        elif error.code == "KERNEL_DIED" and out_of_memory(error.evalue):
            error.code = MEMORY_LIMIT_EXCEEDED
            note = f"the kernel ran out of memory: an allocation exceeded {limit}"
        else:
            return
        result.message = f"{result.message}; {note}" if result.message else note


class DiskFullHook(ExecutionHook):
    """ExecutionHook: marks executions that met a full disk with DISK_FULL."""

    def __init__(self, watch: DiskWatch) -> None:
        self.watch = watch

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        result = outcome.result
        failure = outcome.collected.output_error
        if failure is not None and is_disk_full(failure):
            self.watch.output_write_failed(failure.message)
            note = (
                "the disk is full: output of this execution could not be saved (the code "
                "ran; the session keeps its variables); free space, e.g. in outputs/"
            )
            if result.error is None:
                result.status = "error"
                result.error = ExecutionErrorInfo(
                    ename="DiskFull", evalue=failure.message, traceback=[], code=DISK_FULL
                )
            elif result.error.code is None:
                result.error.code = DISK_FULL
            result.message = f"{result.message}; {note}" if result.message else note
            return
        error = result.error
        if error is not None and error.code is None and _user_disk_full(error):
            error.code = DISK_FULL
            self.watch.output_write_failed(f"user code: {error.ename}: {error.evalue}")


def _user_disk_full(error: ExecutionErrorInfo) -> bool:
    text = f"{error.ename}: {error.evalue}"
    return any(marker in text for marker in _DISK_FULL_MARKERS)
