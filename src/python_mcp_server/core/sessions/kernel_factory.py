"""Starts ready-to-use kernels: launch through the configured launcher, connect, wait ready."""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from python_mcp_server.core.packages.session_packages import PackageFolder, SessionPackages
from python_mcp_server.core.sessions import thread_context
from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_environment import (
    KernelPipConfig,
    kernel_environment,
    session_package_variables,
)
from python_mcp_server.core.sessions.preload import PreloadPolicy
from python_mcp_server.errors import KernelSilentError, KernelStartError
from python_mcp_server.infra.kernels.base import KernelLauncher, KernelLaunchRequest
from python_mcp_server.infra.network.access import NetworkAccess

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
    #: What the kernel-side pip installs with (sessions with a package folder).
    pip: KernelPipConfig = field(default_factory=KernelPipConfig)
    #: Local package folders (find-links) kernels may read for ``%pip install``.
    readable_paths: tuple[Path, ...] = ()


class KernelFactory:
    """One place that knows how a session's kernel is made."""

    def __init__(
        self,
        launcher: KernelLauncher,
        config: KernelFactoryConfig,
        python_for: PythonResolver = server_python,
        packages: SessionPackages | None = None,
    ) -> None:
        self.launcher = launcher
        self._config = config
        self.python_for = python_for
        self.preload = PreloadPolicy(config.preload, launcher.preload_mode)
        #: Per-session package folders; None: kernels get none (remote kernels).
        self.packages = packages
        self._folder_of: weakref.WeakKeyDictionary[KernelClient, PackageFolder] = (
            weakref.WeakKeyDictionary()
        )
        self._session_starts = 0
        self._no_session_starts = asyncio.Event()
        self._no_session_starts.set()
        #: Replies of thread-context lines sent on attach, awaited in the background.
        self._reports: set[asyncio.Task[None]] = set()

    async def session_starts_done(self) -> None:
        """Return once no kernel is starting for a waiting session (the pool waits so)."""
        await self._no_session_starts.wait()

    def forks(self, venv_name: str | None) -> bool:
        """Whether kernels of ``venv_name`` fork from a preloaded template (cheap ones)."""
        return self.launcher.forks(self.launch_request(venv_name, "pool"))

    @property
    def start_timeout(self) -> float:
        return self._config.start_timeout

    def launch_request(
        self,
        venv_name: str | None,
        label: str,
        folder: PackageFolder | None = None,
        network: NetworkAccess | None = None,
    ) -> KernelLaunchRequest:
        """What a kernel of ``venv_name`` gets: its environment read-only (the folder is
        the server's record ``<venvs>/<name>``, never found through the interpreter's
        links), the workspace and its session package folder writable."""
        workspace = self._config.workspace
        python = self.python_for(venv_name)
        environment_bin = Path(python).parent
        extra = dict(self._config.extra_env or {})
        prefix = [environment_bin]
        writable = [workspace]
        own: tuple[str, ...] = ()
        if folder is not None:
            variables = session_package_variables(folder.site, folder.cache, self._config.pip)
            extra.update(variables)
            own = (*variables, "PATH")
            prefix = [folder.bin, folder.site / "bin", environment_bin]
            writable.append(folder.root)
        return KernelLaunchRequest(
            python=python,
            cwd=workspace,
            env=kernel_environment(workspace, extra=extra, path_prefix=prefix),
            label=label,
            writable_paths=tuple(writable),
            readable_paths=(environment_bin.parent, *self._config.readable_paths),
            preload=self.preload.modules_for(venv_name),
            own_variables=own,
            network=network,
            extra_args=thread_context.KERNEL_ARGS,
        )

    async def start(
        self,
        venv_name: str | None,
        label: str,
        *,
        pooled: bool = False,
        network: NetworkAccess | None = None,
    ) -> KernelClient:
        """Launch a kernel for an environment and return a client once it answers.

        ``label`` is the session the kernel is for: it gets the session's package folder
        (made now for a new session). A ``pooled`` kernel gets a fresh folder that the
        session taking it claims.

        A kernel still silent after half the start timeout is ended and launched once
        more within the same overall budget: on a loaded machine a fresh kernel process
        has, rarely, stayed silent for good, and a second one answers at once.
        """
        if pooled:
            return await self._start_for(venv_name, label, pooled, network)
        self._session_starts += 1
        self._no_session_starts.clear()
        try:
            return await self._start_for(venv_name, label, pooled, network)
        finally:
            self._session_starts -= 1
            if not self._session_starts:
                self._no_session_starts.set()

    async def _start_for(
        self, venv_name: str | None, label: str, pooled: bool, network: NetworkAccess | None
    ) -> KernelClient:
        folder: PackageFolder | None = None
        made = False
        if self.packages is not None:
            folder = None if pooled else self.packages.for_session(label)
            if folder is None:
                python = self.python_for(venv_name)
                folder = await asyncio.to_thread(self.packages.create, python)
                made = True
        try:
            client = await self._start(venv_name, label, folder, network)
        except BaseException:
            if made and folder is not None and self.packages is not None:
                await self.packages.discard(folder)
            raise
        if folder is not None and self.packages is not None:
            self._folder_of[client] = folder
            if not pooled:
                self.packages.register(label, folder)
        return client

    async def _start(
        self,
        venv_name: str | None,
        label: str,
        folder: PackageFolder | None,
        network: NetworkAccess | None = None,
    ) -> KernelClient:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.start_timeout
        request = self.launch_request(venv_name, label, folder, network)
        kernel = await self.launcher.launch(request)
        try:
            try:
                client = await KernelClient.connect(kernel, timeout=self._config.start_timeout / 2)
            except KernelSilentError as exc:
                logger.warning("kernel for %s stayed silent, starting another: %s", label, exc)
                kernel = await self.launcher.launch(request)
                client = await KernelClient.connect(
                    kernel, timeout=max(1.0, deadline - loop.time())
                )
        except KernelStartError as exc:
            hint = self.launcher.start_failure_hint(exc.message)
            if hint is None or isinstance(exc, KernelSilentError):
                raise
            raise KernelStartError(f"{hint}: {exc.message}") from exc
        if not self.launcher.passes_kernel_args:
            # Nobody else can reach the kernel yet: the line runs before anyone's code.
            try:
                await thread_context.install(client, max(1.0, deadline - loop.time()))
            except BaseException:  # cancelled: the kernel just started must not outlive it
                await client.close(kill=True)
                raise
        self.preload.after_start(kernel, venv_name, request.preload)
        return client

    async def environment_changed(self) -> None:
        """Packages changed: preloads are tried again, templates with old imports end."""
        self.preload.problems.clear()
        self.preload.unforked.clear()
        await self.launcher.environment_changed()

    def session_request(
        self,
        venv_name: str | None,
        session_id: str,
        label: str,
        network: NetworkAccess | None = None,
    ) -> KernelLaunchRequest:
        """A launch request for a process of the session (a script): its environment, the
        packages the session installed for itself and the session's own network policy."""
        folder = self.packages.for_session(session_id) if self.packages is not None else None
        return self.launch_request(venv_name, label, folder, network)

    def claim(self, client: KernelClient, session_id: str) -> None:
        """A session takes a pooled kernel: its package folder becomes the session's."""
        folder = self._folder_of.get(client)
        if folder is not None and self.packages is not None:
            self.packages.claim(session_id, folder)

    async def release(self, session_id: str) -> None:
        """The session has ended: remove its package folder."""
        if self.packages is not None:
            await self.packages.release(session_id)

    async def attach(self, session_id: str) -> KernelClient | None:
        """A client for the running kernel of a session another server started, if any.

        The kernel may be running someone's code, which holds its shell channel, so
        readiness is a kernel_info round trip on control, with its status seen on IOPub.
        Unlike ``start``, failing to connect leaves the kernel running: other servers use
        it. The thread-context line is sent, never waited for (see thread_context.py).
        """
        kernel = await self.launcher.find_session_kernel(session_id)
        if kernel is None:
            return None
        # Asked before connecting too: a gateway on Jupyter Server 1.x (Enterprise Gateway
        # 3.x) takes the kernel_info its websocket sends on connect for the kernel's state,
        # and reports "idle" while a cell runs.
        before = await kernel.reported_state()
        timeout = self._config.start_timeout
        channels = await kernel.connect()
        client = KernelClient(kernel, channels)
        try:
            await client.wait_ready(timeout, channel="control")
            await channels.wait_connected(timeout)
        except BaseException:
            await client.close(kill=False)
            raise
        # Code another server started may be running: the backend knows; IOPub status
        # messages keep it true from here on. A "busy" seen before connecting holds until
        # the kernel's shell answers (the cell may have ended just before this connected).
        # Any other word is idle: the kernel has just answered, and a gateway's "starting"
        # only means its own server has not yet seen a status message from the kernel
        # (Enterprise Gateway 3.3 keeps saying it for kernels another replica started).
        after = await kernel.reported_state()
        if "busy" in (before, after):
            client.busy_until_shell_answers()
        else:
            client.execution_state = "idle"
        if not self.launcher.passes_kernel_args:
            self._send_thread_context(client)
        return client

    def _send_thread_context(self, client: KernelClient) -> None:
        """Queue the thread-context line ahead of this server's cells, without waiting
        behind a cell another server may be running; its reply is logged later."""
        execution = thread_context.send(client)
        if execution is None:
            return
        task = asyncio.create_task(thread_context.report(client, execution, None))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)
