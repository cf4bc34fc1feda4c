"""The server's services, built from settings, started and stopped by the lifespan.

This is the typed application state: tools receive it by closure when they are
registered, so nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.core.execution.background_output import BackgroundOutputHook
from python_mcp_server.core.execution.introspection import IntrospectionConfig, IntrospectionService
from python_mcp_server.core.execution.limits import (
    DiskFullHook,
    KernelLimits,
    MemoryLimitHook,
    describe_limits,
)
from python_mcp_server.core.execution.output_collector import OutputBounds
from python_mcp_server.core.execution.scripts import ScriptRunner, ScriptsConfig
from python_mcp_server.core.execution.service import ExecutionService
from python_mcp_server.core.execution.tracebacks import TracebackHook, traceback_context
from python_mcp_server.core.notebooks.cells import CellStore, CellStoreConfig
from python_mcp_server.core.notebooks.live import LiveFeed
from python_mcp_server.core.notebooks.recorder import NotebookRecorder
from python_mcp_server.core.notebooks.service import NotebookService
from python_mcp_server.core.observability.audit import AuditHook
from python_mcp_server.core.observability.audit_store import AuditConfig, AuditStore
from python_mcp_server.core.observability.health import HealthConfig, HealthMonitor
from python_mcp_server.core.observability.health_report import (
    ExecutionMetrics,
    HealthReporter,
    ReportConfig,
    summarize_settings,
)
from python_mcp_server.core.observability.history import HistoryConfig, HistoryHook, HistoryStore
from python_mcp_server.core.packages.auto_install import AutoInstallHook
from python_mcp_server.core.packages.environments import EnvironmentManager, EnvironmentsConfig
from python_mcp_server.core.packages.installer import (
    Installer,
    InstallerConfig,
    find_uv,
    split_setting,
)
from python_mcp_server.core.packages.service import PackageService
from python_mcp_server.core.packages.session_packages import SessionPackages
from python_mcp_server.core.packages.venv_records import server_site_dirs
from python_mcp_server.core.safety.checker import SafetyHook, SafetyPolicy
from python_mcp_server.core.sessions.kernel_environment import KernelPipConfig
from python_mcp_server.core.sessions.kernel_factory import KernelFactory, KernelFactoryConfig
from python_mcp_server.core.sessions.manager import SessionManager, SessionsConfig
from python_mcp_server.core.sessions.pool_policy import (
    PoolConfig,
    default_parallel_starts,
    default_urgent_parallel_starts,
)
from python_mcp_server.core.sessions.preload import preload_modules
from python_mcp_server.core.sessions.preload_notice import PreloadNoticeHook
from python_mcp_server.core.sessions.registry import RegistryConfig, SessionRegistry
from python_mcp_server.core.sessions.session import ExecutionConfig
from python_mcp_server.core.sessions.snapshots import SnapshotConfig, SnapshotHook, SnapshotService
from python_mcp_server.core.workspace.disk import DiskWatch
from python_mcp_server.core.workspace.files import WorkspaceFiles
from python_mcp_server.core.workspace.new_files import NewFilesHook, NewFilesTracker
from python_mcp_server.core.workspace.outputs import OutputFiles, OutputLimits
from python_mcp_server.core.workspace.resolver import Workspace, WorkspaceConfig
from python_mcp_server.infra.kernels.base import KernelLauncher
from python_mcp_server.infra.kernels.sandbox import BwrapLauncher
from python_mcp_server.infra.sandboxed_run import SandboxedRunner
from python_mcp_server.infra.storage.database import Database
from python_mcp_server.infra.storage.factory import DatabaseConfig, make_database
from python_mcp_server.server.kernel_isolation import (
    build_local_launcher,
    server_python_paths,
    server_side_runner,
)
from python_mcp_server.server.result_budget import ResultBudget
from python_mcp_server.server.script_isolation import script_command_builder
from python_mcp_server.server.view.links import ViewSigner
from python_mcp_server.settings import Settings

logger = logging.getLogger(__name__)

WORKSPACE_FOLDERS = ("scripts", "outputs", "uploads")


@dataclass
class Services:
    """Everything the tools talk to."""

    settings: Settings
    launcher: KernelLauncher
    sessions: SessionManager
    execution: ExecutionService
    environments: EnvironmentManager
    packages: PackageService
    files: WorkspaceFiles
    scripts: ScriptRunner
    new_files: NewFilesTracker
    #: Sandbox and limits of the kernels, as health shows them.
    limits: KernelLimits
    introspection: IntrospectionService
    health: HealthMonitor
    health_report: HealthReporter
    #: History and audit records (and whatever else is shared between replicas).
    database: Database
    history: HistoryStore
    audit: AuditStore
    snapshots: SnapshotService
    cells: CellStore
    notebooks: NotebookService
    notebook_recorder: NotebookRecorder
    live: LiveFeed
    view_signer: ViewSigner
    #: Fits every tool result into MCP_MAX_RESULT_CHARS.
    result_budget: ResultBudget

    async def start(self) -> None:
        workspace = self.settings.workspace_path
        # The state folder first: made before the workspace is shared with the kernel
        # user, it never inherits that grant.
        self.settings.state_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Then the database: unreachable, the server stops before anything else started.
        await self.database.open()
        workspace.mkdir(parents=True, exist_ok=True)
        folders = [workspace, *(workspace / folder for folder in WORKSPACE_FOLDERS)]
        for folder in folders[1:]:
            folder.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.launcher.share_folders, folders)
        await asyncio.to_thread(self.new_files.start)
        await self.history.open()
        await self.audit.open()
        await self.cells.open()
        await self.snapshots.start()
        await self.environments.start()  # the default venv exists before any kernel
        if isinstance(self.launcher, BwrapLauncher):  # sandboxed kernels cannot write it
            self.launcher.compile_bytecode()
        await self.sessions.start()
        self.health.start()

    async def aclose(self) -> None:
        """Stop everything, in order; a step that fails is logged and the rest still run,
        so one broken service never leaves kernels behind."""

        async def close_new_files() -> None:
            self.new_files.close()

        steps = (
            self.health.aclose,  # first: it must not restart kernels being shut down
            self.environments.aclose,
            self.sessions.aclose,
            self.launcher.aclose,
            close_new_files,
            self.history.aclose,
            self.database.aclose,
            self.cells.aclose,
            self.snapshots.aclose,
        )
        for step in steps:
            try:
                await step()
            except Exception:
                logger.exception("shutdown step %s failed", getattr(step, "__qualname__", step))


def build_launcher(settings: Settings) -> KernelLauncher:
    """The kernel launcher the settings ask for: a gateway's (MCP_GATEWAY_URL), or local
    processes sandboxed per MCP_SANDBOX."""
    if settings.gateway_url:
        # Imported only when used: its HTTP and websocket clients cost memory at idle.
        from python_mcp_server.server.kernel_gateway import build_gateway_launcher

        return build_gateway_launcher(settings)
    return build_local_launcher(settings)


def build_environments(settings: Settings, runner: SandboxedRunner) -> EnvironmentManager:
    """The environment manager and its installer, from the package settings; every run of
    an environment's interpreter or of the installer goes through ``runner``."""
    uv = find_uv()
    hidden = (
        (str(settings.venvs_path), "<venvs>"),
        (str(settings.state_path), "<state>"),
        (str(settings.workspace_path), "<workspace>"),
        (sys.prefix, "<server>"),
        (str(Path.home()), "~"),
    )
    installer = Installer(
        InstallerConfig(
            timeout=settings.install_timeout,
            index_url=settings.pip_index_url,
            extra_index_urls=split_setting(settings.pip_extra_index_url),
            find_links=split_setting(settings.pip_find_links),
            uv=uv,
            hidden_paths=hidden,
            cache_dir=settings.venvs_path / ".installer-cache",
        ),
        runner,
    )
    return EnvironmentManager(
        EnvironmentsConfig(
            venvs_path=settings.venvs_path,
            default_name=settings.default_venv_name,
            base_python=sys.executable,
            server_dirs=server_site_dirs(),
            uv=uv,
            preinstalled=settings.preinstalled_packages,
            trusted_paths=server_python_paths(),
        ),
        installer,
    )


def build_services(settings: Settings) -> Services:
    """Construct (not start) every service from the settings."""
    workspace = settings.workspace_path
    launcher = build_launcher(settings)
    runner = server_side_runner(launcher, settings)
    environments = build_environments(settings, runner)
    files = WorkspaceFiles(
        Workspace(WorkspaceConfig(workspace, settings.state_path, settings.max_file_bytes))
    )
    disk = DiskWatch({"workspace": workspace, "state": settings.state_path})
    outputs = OutputFiles(
        files.workspace,
        OutputLimits(settings.max_spill_bytes_per_call, settings.max_spill_bytes_per_session),
    )
    installer = environments.installer.config
    factory = KernelFactory(
        launcher,
        KernelFactoryConfig(
            workspace=workspace,
            start_timeout=settings.kernel_start_timeout,
            preload=preload_modules(settings.kernel_preload),
            pip=KernelPipConfig(
                uv=installer.uv,
                index_url=installer.index_url,
                extra_index_urls=installer.extra_index_urls,
                find_links=installer.find_links,
            ),
            readable_paths=installer.local_folders(),
        ),
        python_for=environments.python_for,
        # Remote kernels cannot mount a folder of this machine.
        packages=None if launcher.shared_sessions else SessionPackages(settings.venvs_path),
    )
    database = make_database(
        DatabaseConfig(
            url=settings.database_url,
            sqlite_path=settings.state_path / "history.sqlite3",
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
            queue_limit=settings.database_queue_limit,
        )
    )
    sessions = SessionManager(
        SessionsConfig(
            max_sessions=settings.max_sessions,
            idle_timeout=settings.session_idle_timeout,
            # Gateway kernels are named by session id, so none can wait in a pool.
            pool=PoolConfig(
                size=0 if launcher.shared_sessions else settings.kernel_pool_size,
                # A burst larger than the sessions allowed could never be taken.
                burst=min(settings.kernel_pool_burst, settings.max_sessions),
                parallel_starts=default_parallel_starts(),
                urgent_parallel_starts=default_urgent_parallel_starts(),
            ),
            max_concurrent_executions=settings.max_concurrent_executions,
        ),
        ExecutionConfig(
            outputs=outputs,
            default_timeout=settings.execution_timeout,
            interrupt_grace=settings.interrupt_grace,
            output_bounds=OutputBounds(
                max_chars=settings.max_output_chars,
                max_displays=settings.max_display_outputs,
                max_image_bytes=settings.max_image_attach_bytes,
            ),
        ),
        factory,
        session_registry(settings, launcher, database),
    )
    limits = describe_limits(
        launcher, requested=settings.sandbox, execution_timeout=settings.execution_timeout
    )
    execution = ExecutionService(
        sessions,
        [
            SafetyHook(SafetyPolicy(settings.safety_mode, settings.allow_unsafe)),
            MemoryLimitHook(limits.memory_limit_mb),
            DiskFullHook(disk),
            BackgroundOutputHook(),
            TracebackHook(traceback_context(workspace)),
        ],
    )
    execution.add_hook(PreloadNoticeHook())
    environments.sessions = sessions
    packages = PackageService(environments, sessions)
    new_files = NewFilesTracker(files.workspace)
    execution.add_hook(NewFilesHook(new_files))
    scripts = ScriptRunner(
        files,
        sessions,
        execution,
        new_files,
        ScriptsConfig(settings.execution_timeout, settings.max_output_chars, outputs),
        script_command_builder(launcher),
    )
    # With SQLite, the cells go through the database's write queue: one execution's cell,
    # history and audit records in one transaction.
    cells = CellStore(CellStoreConfig(settings.state_path / "notebooks.sqlite3"), database)
    live = LiveFeed()
    recorder = NotebookRecorder(cells, live)
    execution.add_hook(recorder)
    execution.watchers.append(recorder)
    sessions.replacement_hooks.append(recorder.kernel_replaced)
    if settings.auto_install:
        execution.add_hook(AutoInstallHook(packages, environments, workspace))
    health, health_report, history, audit, snapshots = build_observability(
        settings, sessions, execution, launcher, limits, runner, database, disk
    )
    environments.audit_sink = audit
    return Services(
        settings=settings,
        launcher=launcher,
        sessions=sessions,
        execution=execution,
        environments=environments,
        packages=packages,
        files=files,
        scripts=scripts,
        new_files=new_files,
        limits=limits,
        introspection=IntrospectionService(
            sessions, IntrospectionConfig(timeout=settings.introspection_timeout)
        ),
        health=health,
        health_report=health_report,
        database=database,
        history=history,
        audit=audit,
        snapshots=snapshots,
        cells=cells,
        notebooks=NotebookService(cells, files.workspace, execution),
        notebook_recorder=recorder,
        live=live,
        view_signer=ViewSigner(settings.auth_token),
        result_budget=ResultBudget(settings.max_result_chars, outputs),
    )


def session_registry(
    settings: Settings, launcher: KernelLauncher, database: Database
) -> SessionRegistry | None:
    """The record of sessions shared with other servers (kernels on a gateway); None when
    the kernels are this server's own."""
    if not launcher.shared_sessions:
        return None
    # A start that has not confirmed its claim after this long belongs to a dead server.
    claim_timeout = 2 * settings.kernel_start_timeout + 30
    return SessionRegistry(
        database, launcher.sharing_scope, RegistryConfig(claim_timeout=claim_timeout)
    )


def build_observability(
    settings: Settings,
    sessions: SessionManager,
    execution: ExecutionService,
    launcher: KernelLauncher,
    limits: KernelLimits,
    runner: SandboxedRunner,
    database: Database,
    disk: DiskWatch | None = None,
) -> tuple[HealthMonitor, HealthReporter, HistoryStore, AuditStore, SnapshotService]:
    """Health monitor, history, audit and snapshots, hooked into sessions and execution."""
    state = settings.state_path
    history = HistoryStore(database, HistoryConfig(settings.max_history))
    audit = AuditStore(database, AuditConfig(settings.max_audit))
    snapshots = SnapshotService(
        SnapshotConfig(
            folder=state / "snapshots",
            max_bytes=settings.snapshot_max_mb * 1024 * 1024,
            auto=settings.auto_snapshot,
            timeout=settings.execution_timeout,
        )
    )
    health = HealthMonitor(
        sessions,
        HealthConfig(interval=settings.health_interval, max_restarts=settings.max_kernel_restarts),
    )
    health.gone_hooks.append(snapshots.forget)
    sessions.replacement_hooks += [health.after_replacement, snapshots.after_replacement]
    metrics = ExecutionMetrics()
    for hook in (metrics, HistoryHook(history), AuditHook(audit), SnapshotHook(snapshots)):
        execution.add_hook(hook)
    summary = summarize_settings(settings.model_dump())
    report = HealthReporter(
        ReportConfig(
            settings=summary,
            kernel_launcher=launcher.name,
            pool_size=settings.kernel_pool_size,
            limits=limits.as_dict(),
        ),
        sessions,
        health,
        history,
        metrics,
        runner,
        disk,
    )
    return health, report, history, audit, snapshots
