"""Starts ready-to-use kernels: launch through the configured launcher, connect, wait ready."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_environment import kernel_environment
from python_mcp_server.core.sessions.preload import PreloadPolicy
from python_mcp_server.errors import KernelSilentError
from python_mcp_server.infra.kernels.base import KernelLauncher, KernelLaunchRequest

logger = logging.getLogger(__name__)

#: Maps an environment name (None = default) to the interpreter its kernels run.
PythonResolver = Callable[[str | None], str]


def server_python(_venv_name: str | None) -> str:
    """The resolver used before environments exist: the server's own interpreter."""
    return sys.executable


@dataclass(frozen=True)
class KernelFactoryConfig:
    """What every kernel shares."""

    workspace: Path
    start_timeout: float
    extra_env: Mapping[str, str] | None = None
    #: Modules every new kernel imports before it answers (see core/sessions/preload.py).
    preload: tuple[str, ...] = ()


class KernelFactory:
    """One place that knows how a session's kernel is made."""

    def __init__(
        self,
        launcher: KernelLauncher,
        config: KernelFactoryConfig,
        python_for: PythonResolver = server_python,
    ) -> None:
        self.launcher = launcher
        self._config = config
        self.python_for = python_for
        self.preload = PreloadPolicy(config.preload, launcher.preload_mode)

    def launch_request(self, venv_name: str | None, label: str) -> KernelLaunchRequest:
        workspace = self._config.workspace
        return KernelLaunchRequest(
            python=self.python_for(venv_name),
            cwd=workspace,
            env=kernel_environment(workspace, extra=self._config.extra_env),
            label=label,
            writable_paths=(workspace,),
            preload=self.preload.modules_for(venv_name),
        )

    async def start(self, venv_name: str | None, label: str) -> KernelClient:
        """Launch a kernel for an environment and return a client once it answers.

        A kernel still silent after half the start timeout is ended and launched once
        more within the same overall budget: on a loaded machine a fresh kernel process
        has, rarely, stayed silent for good, and a second one answers at once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.start_timeout
        request = self.launch_request(venv_name, label)
        kernel = await self.launcher.launch(request)
        try:
            client = await KernelClient.connect(kernel, timeout=self._config.start_timeout / 2)
        except KernelSilentError as exc:
            logger.warning("kernel for %s stayed silent, starting another: %s", label, exc)
            kernel = await self.launcher.launch(request)
            client = await KernelClient.connect(kernel, timeout=max(1.0, deadline - loop.time()))
        self.preload.after_start(kernel, venv_name, request.preload)
        return client

    async def environment_changed(self) -> None:
        """Packages changed: preloads are tried again, templates with old imports end."""
        self.preload.problems.clear()
        await self.launcher.environment_changed()

    async def attach(self, session_id: str) -> KernelClient | None:
        """A client for the running kernel of a session another server started, if any.

        The kernel may be running someone's code, which holds its shell channel, so
        readiness is a kernel_info round trip on control, with its status seen on IOPub.
        Unlike ``start``, failing to connect leaves the kernel running: other servers use
        it.
        """
        kernel = await self.launcher.find_session_kernel(session_id)
        if kernel is None:
            return None
        timeout = self._config.start_timeout
        channels = await kernel.connect()
        client = KernelClient(kernel, channels)
        try:
            await client.wait_ready(timeout, channel="control")
            await channels.wait_connected(timeout)
        except BaseException:
            await client.close(kill=False)
            raise
        client.execution_state = "idle"  # iopub status messages correct it from here on
        return client
