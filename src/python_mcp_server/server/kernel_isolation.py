"""Choose how local kernels are isolated: bubblewrap or none, and under which limits.

``MCP_SANDBOX=auto`` probes bubblewrap once, at start: when it is installed and works,
kernels run sandboxed; otherwise they run without a sandbox and health says why.
``MCP_SANDBOX=bwrap`` refuses to start when bubblewrap does not work; ``none`` never
sandboxes. Memory and file-size limits apply either way; the process limit only inside
the sandbox: RLIMIT_NPROC counts per kernel in the sandbox's user namespace, except for
root, whom the kernel exempts; for root a cgroup ``pids.max`` per kernel holds it.
"""

from __future__ import annotations

import logging
import os
import site
import sys
from pathlib import Path

from python_mcp_server.core.packages.installer import INSTALLER_ENV_ALLOWED
from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.base import KernelLauncher
from python_mcp_server.infra.kernels.cgroups import PidsCgroups
from python_mcp_server.infra.kernels.limits import MIB, LimitedLauncher, ResourceLimits
from python_mcp_server.infra.kernels.sandbox import (
    BwrapLauncher,
    SandboxConfig,
    find_bwrap,
    probe_bwrap,
)
from python_mcp_server.infra.kernels.template_launcher import TemplateLauncher
from python_mcp_server.infra.network.proxy import EgressProxy
from python_mcp_server.infra.sandboxed_run import RunnerConfig, SandboxedRunner
from python_mcp_server.server.kernel_network import network_access
from python_mcp_server.settings import Settings

logger = logging.getLogger(__name__)


def resource_limits(settings: Settings) -> ResourceLimits:
    return ResourceLimits(
        memory_bytes=settings.max_memory_mb * MIB,
        file_size_bytes=settings.max_kernel_file_mb * MIB,
        max_processes=settings.max_kernel_processes,
    )


def sandbox_config(settings: Settings, bwrap: str) -> SandboxConfig:
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
    )


def server_python_paths() -> tuple[Path, ...]:
    """The server's interpreter and site-packages: every environment's kernel reads them."""
    found = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    found.update(Path(p) for p in site.getsitepackages())
    return tuple(sorted(found))


def unsandboxed_launcher(settings: Settings, limits: ResourceLimits) -> LimitedLauncher:
    """Local kernels without bubblewrap: forked from a preloaded template when enabled."""
    launcher_class = TemplateLauncher if settings.kernel_fork else LimitedLauncher
    return launcher_class(
        settings.state_path,
        limits.without_processes(),
        start_timeout=settings.kernel_start_timeout,
    )


def build_local_launcher(settings: Settings) -> LimitedLauncher:
    """The local launcher for MCP_SANDBOX, probing bubblewrap when asked to choose."""
    limits = resource_limits(settings)
    timeout = settings.kernel_start_timeout
    if settings.sandbox == "none":
        return unsandboxed_launcher(settings, limits)
    bwrap = find_bwrap()
    problem = (
        "bubblewrap (bwrap) is not installed"
        if bwrap is None
        else probe_bwrap(bwrap, settings.kernel_network)
    )
    if bwrap is not None and problem is None:
        return BwrapLauncher(
            settings.state_path,
            limits,
            sandbox_config(settings, bwrap),
            start_timeout=timeout,
            cgroups=PidsCgroups.find(),
            proxy=EgressProxy(),
        )
    if settings.sandbox == "bwrap":
        raise KernelStartError(f"MCP_SANDBOX=bwrap, but {problem}")
    launcher = unsandboxed_launcher(settings, limits)
    launcher.sandbox_warning = f"MCP_SANDBOX=auto: {problem}, so kernels run without a sandbox"
    logger.warning("%s", launcher.sandbox_warning)
    return launcher


def server_side_runner(launcher: KernelLauncher, settings: Settings) -> SandboxedRunner:
    """The runner of installs, listings and environment probes: the kernels' sandbox and
    limits when kernels are sandboxed here; otherwise only a scrubbed environment and the
    limits (not a security boundary; see docs/security.md)."""
    if isinstance(launcher, BwrapLauncher):
        sandbox = launcher.config
        return SandboxedRunner(
            RunnerConfig(
                bwrap=sandbox.bwrap,
                hidden_paths=sandbox.hidden_paths,
                readable_paths=sandbox.readable_paths,
                tmp_size_mb=sandbox.tmp_size_mb,
                limits=launcher.limits,
                passed_variables=INSTALLER_ENV_ALLOWED,
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
