"""The server's services, built from settings, started and stopped by the lifespan.

This is the typed application state: tools receive it by closure when they are
registered, so nothing lives in module globals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from python_mcp_server.core.execution import ExecutionService
from python_mcp_server.core.kernel_factory import KernelFactory, KernelFactoryConfig
from python_mcp_server.core.session import ExecutionConfig
from python_mcp_server.core.sessions import SessionManager, SessionsConfig
from python_mcp_server.infra.kernels.base import KernelLauncher
from python_mcp_server.infra.kernels.local import LocalLauncher
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

    async def start(self) -> None:
        workspace = self.settings.workspace_path
        for folder in WORKSPACE_FOLDERS:
            (workspace / folder).mkdir(parents=True, exist_ok=True)
        self.settings.state_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.sessions.start()

    async def aclose(self) -> None:
        await self.sessions.aclose()
        await self.launcher.aclose()


def build_launcher(settings: Settings) -> KernelLauncher:
    """The kernel launcher the settings ask for."""
    return LocalLauncher(settings.state_path, start_timeout=settings.kernel_start_timeout)


def build_services(settings: Settings) -> Services:
    """Construct (not start) every service from the settings."""
    workspace = settings.workspace_path
    launcher = build_launcher(settings)
    factory = KernelFactory(
        launcher,
        KernelFactoryConfig(workspace=workspace, start_timeout=settings.kernel_start_timeout),
    )
    sessions = SessionManager(
        SessionsConfig(
            max_sessions=settings.max_sessions,
            idle_timeout=settings.session_idle_timeout,
            pool_size=settings.kernel_pool_size,
            max_concurrent_executions=settings.max_concurrent_executions,
        ),
        ExecutionConfig(
            workspace=workspace,
            default_timeout=settings.execution_timeout,
            interrupt_grace=settings.interrupt_grace,
            max_output_chars=settings.max_output_chars,
        ),
        factory,
    )
    execution = ExecutionService(sessions)
    return Services(settings=settings, launcher=launcher, sessions=sessions, execution=execution)
