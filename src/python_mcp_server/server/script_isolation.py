"""How run_script's subprocesses are isolated: exactly like the kernels of the launcher.

A script started by the server must not get out of what a kernel is confined to: under
bubblewrap it runs in the same sandbox (same mounts, namespaces, network rule, kernel
user, capabilities and seccomp filter, the workspace as its working folder), in cgroups of
its own with the kernels' memory limit (``/tmp`` and ``/dev/shm`` counted) and process
limit where the launcher has cgroups, with the kernels' rlimits set before the script
starts, and with the environment the launcher gives kernels. Under ``allowlist`` it gets
what a kernel gets: an egress proxy socket of its own and the in-sandbox forwarder on
``127.0.0.1:3128``, started by the bootstrap before the script, with the proxy variables
set. Without a sandbox it gets the rlimits and the environment.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from python_mcp_server.core.execution.scripts import PreparedScript, ScriptCommand
from python_mcp_server.infra.kernels.base import KernelLauncher, KernelLaunchRequest
from python_mcp_server.infra.kernels.limits import LimitedLauncher, ResourceLimits
from python_mcp_server.infra.kernels.local import LocalLauncher
from python_mcp_server.infra.kernels.sandbox import BwrapLauncher
from python_mcp_server.infra.sandboxed_run import limits_prefix

MIB = 1024 * 1024


def bootstrap(
    argv: list[str], limits: ResourceLimits | None, forwarder: dict[str, Any] | None
) -> list[str]:
    """``argv`` started by its own interpreter (``argv[0]``) under ``limits``, after the
    forwarder; ``argv`` itself when there is nothing to set up."""
    prefix = limits_prefix(argv[0], limits or ResourceLimits(), forwarder)
    return [*prefix, *argv]


def memory_verdict(kills: int, limits: ResourceLimits) -> str | None:
    """What to tell the caller when the memory cgroup ended processes of the script."""
    if not kills:
        return None
    limit = f" of {limits.memory_bytes // MIB} MiB" if limits.memory_bytes else ""
    ended = "1 of its processes" if kills == 1 else f"{kills} of its processes"
    return (
        f"the script went over the memory limit{limit} (its processes together, /tmp and "
        f"/dev/shm included): the out-of-memory killer ended {ended}"
    )


def script_command_builder(launcher: KernelLauncher) -> ScriptCommand:
    """The function turning (launch request, script argv) into what to execute."""

    @contextlib.asynccontextmanager
    async def build(request: KernelLaunchRequest, argv: list[str]) -> AsyncIterator[PreparedScript]:
        if isinstance(launcher, BwrapLauncher):
            name = f"kscript-{uuid.uuid4().hex[:12]}"
            async with launcher.confined_run(request, name) as run:
                env = launcher.kernel_env(request)  # the proxy variables under allowlist
                env.pop("JPY_PARENT_PID", None)  # a kernel's variable, meaningless to a script
                command = bootstrap(argv, run.limits, run.forwarder)
                command = launcher.sandboxed_command(request, request.cwd, command, run.cgroups)
                yield PreparedScript(
                    command, env, lambda: memory_verdict(run.memory_kills(), launcher.limits)
                )
            return
        env = (
            launcher.kernel_env(request)
            if isinstance(launcher, LocalLauncher)
            else dict(request.env)
        )
        env.pop("JPY_PARENT_PID", None)
        limits = launcher.limits if isinstance(launcher, LimitedLauncher) else None
        yield PreparedScript(bootstrap(argv, limits, None), env)

    return build
