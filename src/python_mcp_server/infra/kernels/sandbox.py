"""Sandboxed local kernels: the local launcher's kernel, run inside bubblewrap (bwrap).

What the kernel sees:

- the whole system read-only (``--ro-bind / /``), a fresh /dev, its own /proc;
- a private, size-capped /tmp and an empty /run (host service sockets stay out of reach);
- empty folders over the user's home, the server's state folder (history database,
  logs, other kernels' connection files) and the environments folder;
- writable: the workspace, the kernel's own environment (when its interpreter lives in
  the environments folder) and its own runtime folder (connection file and sockets);
- its own user, pid, ipc and uts namespaces, no capabilities, no nested user namespaces,
  and with ``MCP_KERNEL_NETWORK=deny`` its own network namespace holding only loopback.

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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.base import KernelLaunchRequest, LaunchedKernel
from python_mcp_server.infra.kernels.cgroups import PidsCgroups
from python_mcp_server.infra.kernels.limits import MIB, LimitedLauncher, ResourceLimits
from python_mcp_server.infra.tasks import retrieve_outcomes

logger = logging.getLogger(__name__)

Network = Literal["allow", "deny"]

#: Namespaces and privileges, the same for every kernel (and for the start-up probe).
ISOLATION_ARGS: tuple[str, ...] = (
    "--die-with-parent",
    "--new-session",
    "--unshare-user",
    "--disable-userns",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--hostname",
    "sandbox",
    "--cap-drop",
    "ALL",
)

#: Folders under /run a sandboxed program may still need (DNS through systemd-resolved).
RUN_REEXPOSED = (Path("/run/systemd/resolve"),)
#: Size cap of the empty folders laid over hidden ones (home, state, /run), MiB: tmpfs
#: lives in RAM, so what a kernel writes there must stay small.
HIDDEN_SIZE_MB = 128

_HIDE, _READ_ONLY, _WRITABLE = 0, 1, 2


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox hides and exposes, beyond each launch request's writable paths."""

    network: Network = "allow"
    #: Folders replaced by empty ones: home, state, environments.
    hidden_paths: tuple[Path, ...] = ()
    #: The environments folder: a kernel whose interpreter lives in it gets its env writable.
    venvs_dir: Path | None = None
    #: Folders kernels must read even inside a hidden one (the server's own Python, whose
    #: site-packages the environments link to).
    readable_paths: tuple[Path, ...] = ()
    #: Size cap of the private /tmp and /dev/shm, MiB.
    tmp_size_mb: int = 512
    bwrap: str = "bwrap"


@dataclass(frozen=True)
class _Mount:
    path: Path
    kind: int

    @property
    def order(self) -> tuple[int, int]:
        # Parents before children; at one depth, hide first and expose after.
        return (len(self.path.parts), self.kind)


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _under(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def interpreter_roots(python: str) -> set[Path]:
    """Folders an interpreter needs: its venv, the venv's base install, the real binary's."""
    roots: set[Path] = set()
    exe = Path(python)
    venv = exe.parent.parent
    config = venv / "pyvenv.cfg"
    if config.is_file():
        roots.add(_resolved(venv))
        for line in config.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                roots.add(_resolved(Path(value.strip())).parent)
    roots.add(_resolved(exe).parent.parent)
    return roots


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
        cgroups: PidsCgroups | None = None,
    ) -> None:
        super().__init__(state_dir, limits, start_timeout=start_timeout)
        self.config = config
        #: Per-kernel pids cgroups: how the process limit holds for a root server.
        self.cgroups = cgroups
        self._cgroup_of: dict[str, Path] = {}  # by connection-file stem ("k<name>")
        self._cleanups: set[asyncio.Task[None]] = set()

    def kernel_runtime_dir(self, name: str) -> Path:
        # Each kernel binds only its own folder: no other kernel's connection key in view.
        return self._runtime_dir / f"k{name}"

    def kernel_env(self, request: KernelLaunchRequest) -> dict[str, str]:
        env = super().kernel_env(request)
        env.pop("JPY_PARENT_PID", None)  # that pid does not exist in the kernel's namespace
        env["TMPDIR"] = "/tmp"
        return env

    def kernel_argv(self, request: KernelLaunchRequest, connection_file: Path) -> list[str]:
        inner = super().kernel_argv(request, connection_file)
        prefix: list[str] = []
        if self.cgroups is not None and self.limits.max_processes is not None:
            try:
                cgroup = self.cgroups.for_kernel(connection_file.stem, self.limits.max_processes)
            except OSError as exc:
                raise KernelStartError(f"could not create the kernel's cgroup: {exc}") from exc
            self._cgroup_of[connection_file.stem] = cgroup
            prefix = PidsCgroups.join_command(cgroup)
        return [
            *prefix,
            self.config.bwrap,
            *self.bwrap_args(request, connection_file.parent),
            "--chdir",
            str(request.cwd),
            "--",
            *inner,
        ]

    def bwrap_args(self, request: KernelLaunchRequest, runtime_dir: Path) -> list[str]:
        """Namespaces, then the mounts in an order where parents come before children."""
        args = list(ISOLATION_ARGS)
        if self.config.network == "deny":
            args.append("--unshare-net")
        scratch = str(self.config.tmp_size_mb * MIB)
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        args += ["--size", scratch, "--tmpfs", "/dev/shm"]
        for mount in self._mounts(request, runtime_dir):
            if mount.kind == _HIDE:
                small = str(min(self.config.tmp_size_mb, HIDDEN_SIZE_MB) * MIB)
                size = scratch if mount.path == Path("/tmp") else small
                args += ["--size", size, "--tmpfs", str(mount.path)]
            elif mount.kind == _READ_ONLY:
                args += ["--ro-bind", str(mount.path), str(mount.path)]
            else:
                args += ["--bind", str(mount.path), str(mount.path)]
        return args

    def _mounts(self, request: KernelLaunchRequest, runtime_dir: Path) -> list[_Mount]:
        hidden = [Path("/tmp"), Path("/run")]
        hidden += [_resolved(p) for p in self.config.hidden_paths if p.is_dir()]
        hidden = [p for p in dict.fromkeys(hidden) if p != Path("/")]
        writable = [_resolved(p) for p in request.writable_paths if p.is_dir()]
        writable.append(_resolved(runtime_dir))
        venv = self._own_venv(request.python)
        if venv is not None:
            writable.append(venv)
        exposed = [p for p in RUN_REEXPOSED if p.is_dir()]
        readable = {*interpreter_roots(request.python), *map(_resolved, self.config.readable_paths)}
        exposed += [
            root
            for root in sorted(readable)
            if root.is_dir() and _under(root, hidden) and not _under(root, writable)
        ]
        mounts = [_Mount(p, _HIDE) for p in hidden]
        mounts += [_Mount(p, _READ_ONLY) for p in exposed]
        mounts += [_Mount(p, _WRITABLE) for p in dict.fromkeys(writable)]
        return sorted(mounts, key=lambda m: m.order)

    def _own_venv(self, python: str) -> Path | None:
        """The environment folder (``<venvs>/<name>``) an interpreter belongs to, if any."""
        if self.config.venvs_dir is None:
            return None
        venvs = _resolved(self.config.venvs_dir)
        exe = Path(python)
        exe = _resolved(exe.parent) / exe.name  # the folder resolved, not the symlinked binary
        if venvs not in exe.parents:
            return None
        return venvs / exe.relative_to(venvs).parts[0]

    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        kernel = await super().launch(request)
        kernel.interrupt_mode = "message"  # a SIGINT to bwrap would end the whole sandbox
        info = getattr(kernel, "connection_info", {})
        cgroup = self._cgroup_of.pop(Path(str(info.get("ip", ""))).name, None)
        if cgroup is not None:
            task = asyncio.create_task(self._remove_cgroup_after(kernel, cgroup))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)
        return kernel

    async def _remove_cgroup_after(self, kernel: LaunchedKernel, cgroup: Path) -> None:
        with contextlib.suppress(Exception):
            await kernel.wait_exit()
        await asyncio.to_thread(PidsCgroups.remove, cgroup)

    async def aclose(self) -> None:
        cleanups = list(self._cleanups)
        if cleanups:  # give each cgroup's removal a moment; they run on regardless
            await asyncio.wait(cleanups, timeout=5)
            retrieve_outcomes(cleanups)
        if self.cgroups is not None:
            await asyncio.to_thread(self.cgroups.close)
        await super().aclose()


def find_bwrap() -> str | None:
    """The bwrap executable on PATH, if installed."""
    return shutil.which("bwrap")


def probe_bwrap(bwrap: str, network: Network, timeout: float = 10.0) -> str | None:
    """Run a no-op in a sandbox shaped like a kernel's; None when it works, else why not."""
    true = shutil.which("true") or "/bin/true"
    argv = [bwrap, *ISOLATION_ARGS]
    if network == "deny":
        argv.append("--unshare-net")
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    argv += ["--", true]
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
