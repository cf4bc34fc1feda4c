"""How run_script's subprocesses are isolated: exactly like the kernels of the launcher.

A script started by the server must not get out of what a kernel is confined to: under
bubblewrap it runs in the same sandbox (same mounts, namespaces, network rule, kernel
user, capabilities and seccomp filter, the workspace as its working folder), with the
kernels' rlimits (memory, file size, processes) set before the script starts, and with
the environment the launcher gives kernels. Without a sandbox it gets the rlimits and
the environment.
"""

from __future__ import annotations

from python_mcp_server.core.execution.scripts import ScriptCommand
from python_mcp_server.infra.kernels.base import KernelLauncher, KernelLaunchRequest
from python_mcp_server.infra.kernels.limits import LimitedLauncher
from python_mcp_server.infra.kernels.local import LocalLauncher
from python_mcp_server.infra.kernels.sandbox import BwrapLauncher

#: ``python -c`` program: set the rlimits, then become the real command (argv[1:]).
_LIMITS_BOOTSTRAP = """\
import os as _o, resource as _r, sys as _s
for _n, _v in {limits}:
    _n = getattr(_r, _n)
    _h = _r.getrlimit(_n)[1]
    _v = _v if _h == _r.RLIM_INFINITY else min(_v, _h)
    _r.setrlimit(_n, (_v, _v))
_o.execv(_s.argv[1], _s.argv[1:])
"""


def script_command_builder(launcher: KernelLauncher) -> ScriptCommand:
    """The function turning (launch request, script argv) into what to execute."""

    def build(request: KernelLaunchRequest, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        env = (
            launcher.kernel_env(request)
            if isinstance(launcher, LocalLauncher)
            else dict(request.env)
        )
        env.pop("JPY_PARENT_PID", None)  # a kernel's variable, meaningless to a script
        command = list(argv)
        limits = (
            launcher.limits_outside_cgroup()
            if isinstance(launcher, BwrapLauncher)
            else launcher.limits
            if isinstance(launcher, LimitedLauncher)
            else None
        )
        if limits is not None and limits.rlimits():
            pairs = ", ".join(f"({name!r}, {value})" for name, value in limits.rlimits())
            source = _LIMITS_BOOTSTRAP.format(limits=f"({pairs},)")
            command = [argv[0], "-c", source, *argv]
        if isinstance(launcher, BwrapLauncher):
            command = launcher.sandboxed_command(request, request.cwd, command)
        return command, env

    return build
