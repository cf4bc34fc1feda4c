"""health_check and GET /health: the server's overall status, metrics and settings.

``ExecutionMetrics`` is an ExecutionHook counting executions, errors and time since the
server started. ``HealthReporter`` combines it with the monitor, the sessions and the
history database into one ``HealthCheck``. The settings summary never holds a secret
(tokens are masked, credentials in URLs removed) nor a server path.
"""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from python_mcp_server import __version__
from python_mcp_server.core.execution.service import ExecutionHook, ExecutionRequest
from python_mcp_server.core.observability.audit import redact
from python_mcp_server.core.observability.health import HealthMonitor
from python_mcp_server.core.observability.history import HistoryStore
from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.core.workspace.disk import DiskWatch
from python_mcp_server.errors import ServerError
from python_mcp_server.infra.sandboxed_run import RunnerConfig, SandboxedRunner
from python_mcp_server.infra.subprocess import CommandError, CommandTimeoutError
from python_mcp_server.models.health import (
    EnvironmentHealth,
    HealthCheck,
    HealthMetrics,
    KernelHealth,
    ServerStatus,
)

#: Setting names whose values are secrets: shown only as "***" (set) or null.
SECRET_MARKERS = ("token", "password", "secret", "api_key")
#: Setting names that hold server paths: left out even when unset.
PATH_SUFFIXES = ("_dir", "_path", "_file")
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/])/[^\s,]*")
#: Limit and sandbox settings repeated under ``limits``.
LIMIT_NAMES = (
    "execution_timeout",
    "max_memory_mb",
    "max_kernel_file_mb",
    "max_kernel_processes",
    "max_file_bytes",
    "max_output_chars",
    "max_sessions",
    "max_concurrent_executions",
    "max_request_bytes",
    "sandbox",
    "kernel_network",
    "safety_mode",
    "allow_unsafe",
)


def summarize_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings fit to show a client: no paths, secrets masked, URL credentials removed."""
    summary: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, PurePath) or name.endswith(PATH_SUFFIXES):
            continue
        if any(marker in name.lower() for marker in SECRET_MARKERS):
            summary[name] = "***" if value else None
        elif isinstance(value, str):
            summary[name] = redact(_ABSOLUTE_PATH.sub("<server path>", value))
        else:
            summary[name] = value
    return summary


@dataclass
class ExecutionMetrics(ExecutionHook):
    """ExecutionHook: totals since the server started."""

    total: int = 0
    errors: int = 0
    seconds: float = 0.0
    started: float = field(default_factory=time.time)

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        self.total += 1
        self.seconds += outcome.result.execution_time
        if outcome.result.status != "ok":
            self.errors += 1


#: Seconds an environment's interpreter has to answer health_check(venv_name).
ENVIRONMENT_PROBE_TIMEOUT = 20.0

#: Maps an environment name to its interpreter (raises VENV_NOT_FOUND for unknown names).
PythonResolver = Callable[[str | None], str]


@dataclass(frozen=True)
class ReportConfig:
    """Facts the report shows as they are."""

    settings: Mapping[str, Any]
    kernel_launcher: str
    pool_size: int
    #: The sandbox and limits the launcher enforces (core.limits), if known.
    limits: Mapping[str, Any] = field(default_factory=dict)


class HealthReporter:
    """Builds health_check answers."""

    def __init__(
        self,
        config: ReportConfig,
        sessions: SessionManager,
        monitor: HealthMonitor,
        history: HistoryStore,
        metrics: ExecutionMetrics,
        runner: SandboxedRunner | None = None,
        disk: DiskWatch | None = None,
    ) -> None:
        self._disk = disk
        self._config = config
        #: Runs an environment's interpreter confined (it may hold a kernel's files).
        self._runner = runner if runner is not None else SandboxedRunner(RunnerConfig(None))
        self._sessions = sessions
        self._monitor = monitor
        self._history = history
        self._metrics = metrics
        self._limits = dict(config.limits)

    async def check(
        self,
        session: KernelSession | None = None,
        venv_name: str | None = None,
        python_for: PythonResolver | None = None,
    ) -> HealthCheck:
        problems: list[str] = []
        unhealthy = False
        if not self._monitor.running:
            problems.append("the server is not running its services (starting or stopping)")
            unhealthy = True
        if self._monitor.failure:
            problems.append(f"the health monitor's last round failed: {self._monitor.failure}")
        kernels = [await self._monitor.kernel_health(s) for s in self._sessions.all()]
        for kernel in kernels:
            if kernel.status in ("dead", "unresponsive"):
                problems.append(
                    f"session {kernel.session_id!r} kernel is {kernel.status}"
                    + (f": {kernel.last_error}" if kernel.last_error else "")
                )
        pool = self._sessions.pool
        if self._config.pool_size > 0 and pool.ready_count == 0 and pool.last_error:
            problems.append(f"the kernel pool cannot start kernels: {pool.last_error}")
        preload = self._sessions.factory.preload
        if preload.problem:
            problems.append(f"kernel preload: {preload.problem}")
        history_entries: int | None = None
        try:
            history_entries = await self._history.count()
        except ServerError as exc:
            problems.append(f"the history database does not answer: {exc.message}")
        backlog = self._history.database_problem()
        if backlog:
            problems.append(backlog)
        disk = None
        if self._disk is not None:
            disk = self._disk.report(self._history.write_failures, self._history.last_write_error)
            problems += [
                f"the disk holding the {space.name} is full ({space.free_bytes} bytes free): "
                "outputs and history cannot be saved (DISK_FULL)"
                for space in disk.file_systems
                if space.full
            ]
        status: ServerStatus = "unhealthy" if unhealthy else "degraded" if problems else "healthy"
        requested: KernelHealth | None = None
        if session is not None:
            requested = next(k for k in kernels if k.session_id == session.session_id)
        environment = None
        if venv_name is not None and python_for is not None:
            environment = await environment_health(venv_name, python_for, self._runner)
            if not environment.ok:
                problems.append(f"environment {venv_name!r} does not run: {environment.error}")
                status = "unhealthy" if unhealthy else "degraded"
        settings = dict(self._config.settings)
        return HealthCheck(
            status=status,
            problems=problems,
            version=__version__,
            python_version=platform.python_version(),
            kernel_launcher=self._config.kernel_launcher,
            settings=settings,
            limits={name: settings[name] for name in LIMIT_NAMES if name in settings}
            | {"kernel_launcher": self._config.kernel_launcher, "enforced": self._limits},
            metrics=self._metrics_now(kernels),
            history_entries=history_entries,
            kernel=requested,
            environment=environment,
            preload=preload.status(),
            disk=disk,
        )

    def _metrics_now(self, kernels: list[KernelHealth]) -> HealthMetrics:
        metrics = self._metrics
        memory = [k.memory_mb for k in kernels if k.memory_mb is not None]
        return HealthMetrics(
            total_executions=metrics.total,
            errors=metrics.errors,
            success_rate=round((metrics.total - metrics.errors) / metrics.total, 4)
            if metrics.total
            else None,
            average_execution_time=round(metrics.seconds / metrics.total, 6)
            if metrics.total
            else None,
            average_kernel_memory_mb=round(sum(memory) / len(memory), 2) if memory else None,
            active_sessions=len(kernels),
            uptime=round(time.time() - metrics.started, 3),
            kernel_pool_ready=self._sessions.pool.ready_count,
            kernel_pool_depth=self._sessions.pool.depth,
        )


async def environment_health(
    venv_name: str, python_for: PythonResolver, runner: SandboxedRunner
) -> EnvironmentHealth:
    """Run the environment's interpreter once, confined by ``runner`` (a kernel may have
    changed the environment: its code never runs with the server's rights or variables);
    VENV_NOT_FOUND propagates."""
    python = python_for(venv_name)
    environment = Path(python).parent.parent  # the server's record <venvs>/<name>
    try:
        result = await runner.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            timeout=ENVIRONMENT_PROBE_TIMEOUT,
            readable=[environment],
        )
    except CommandTimeoutError:
        return EnvironmentHealth(venv_name=venv_name, ok=False, error="its interpreter hung")
    except CommandError as exc:
        return EnvironmentHealth(
            venv_name=venv_name, ok=False, error=f"its interpreter cannot start ({exc.message})"
        )
    if not result.ok:
        return EnvironmentHealth(
            venv_name=venv_name, ok=False, error=f"its interpreter exited {result.returncode}"
        )
    version = result.stdout.strip()[:40]
    return EnvironmentHealth(venv_name=venv_name, ok=True, python_version=version)
