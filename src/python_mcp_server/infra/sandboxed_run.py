"""The one way the server runs a program that touches files a kernel could have changed.

An environment's interpreter, an installer working on an environment or a session's
package folder, a probe of what an environment imports: each may execute, import or parse
files a kernel wrote (a ``.pth``, a ``sitecustomize.py``, a replaced ``bin/python``).
``SandboxedRunner.run`` therefore runs them

- inside bubblewrap with the kernels' namespaces and mount policy (the system read-only;
  home, state folder, environments folder, ``/tmp`` and ``/run`` hidden; only the folders
  the caller names exposed, from server-side values), when the server sandboxes kernels;
- with a scrubbed environment: only the configured variable names are passed from the
  server's own (never its token or other secrets), plus what the call adds;
- under the kernels' rlimits (memory, file size, processes), set before the program
  starts by a tiny bootstrap of the server's own interpreter (``-I -S``);
- without network unless the call asks for it (installs, as the install policy allows).

Without a sandbox (``MCP_SANDBOX=none``, or ``auto`` where bubblewrap does not work) the
environment is still scrubbed, the limits still set and the state folder never passed,
but the program runs as the server's user with the server's view of the file system:
that mode is not a security boundary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from python_mcp_server.infra.kernels.confine import Confinement
from python_mcp_server.infra.kernels.limits import ResourceLimits
from python_mcp_server.infra.kernels.mounts import mount_args, plan_mounts
from python_mcp_server.infra.subprocess import CommandResult, run_command

#: ``python -I -S -c`` program: set the rlimits, then become the real command (argv[1:]).
_EXEC_BOOTSTRAP = """\
import os as _o, resource as _r, sys as _s
for _n, _v in {limits}:
    _n = getattr(_r, _n)
    _h = _r.getrlimit(_n)[1]
    _v = _v if _h == _r.RLIM_INFINITY else min(_v, _h)
    _r.setrlimit(_n, (_v, _v))
_o.execv(_s.argv[1], _s.argv[1:])
"""


@dataclass(frozen=True)
class RunnerConfig:
    """How server-side runs are confined; built from the kernels' sandbox settings."""

    #: The bwrap executable, or None to run without a sandbox.
    bwrap: str | None
    #: Folders replaced by empty ones (home, state, environments).
    hidden_paths: tuple[Path, ...] = ()
    #: Folders every run may read even inside a hidden one (the server's own Python).
    readable_paths: tuple[Path, ...] = ()
    #: Size cap of the private /tmp and /dev/shm, MiB.
    tmp_size_mb: int = 512
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    #: Names of the server's environment variables a run may see (an allow-list).
    passed_variables: tuple[str, ...] = ()
    #: The interpreter that sets the rlimits before the program starts (the server's own,
    #: which no kernel can write).
    bootstrap_python: str = sys.executable
    #: Namespaces, capabilities and seccomp filter (``confine.py``). Runs keep the
    #: server's user in their own user namespace: they write environments kernels must
    #: not, and the seccomp filter and empty capability sets still hold.
    confinement: Confinement = field(default_factory=Confinement)


def limits_prefix(python: str, limits: ResourceLimits) -> list[str]:
    """``python -I -S -c <bootstrap>``: put before a command to start it under ``limits``."""
    pairs = ", ".join(f"({name!r}, {value})" for name, value in limits.rlimits())
    if not pairs:
        return []
    return [python, "-I", "-S", "-c", _EXEC_BOOTSTRAP.format(limits=f"({pairs},)")]


class SandboxedRunner:
    """Runs programs confined like kernels (see the module docstring)."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config

    @property
    def sandboxed(self) -> bool:
        return self.config.bwrap is not None

    def environment(
        self, extra: Mapping[str, str] | None = None, source: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The allow-listed variables of ``source`` (the server's environment), plus ``extra``."""
        origin = os.environ if source is None else source
        env = {name: origin[name] for name in self.config.passed_variables if name in origin}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if self.sandboxed:
            env["TMPDIR"] = "/tmp"  # the sandbox's private /tmp; the host's is hidden
        env.update(extra or {})
        return env

    def command(
        self,
        argv: Sequence[str],
        *,
        readable: Sequence[Path] = (),
        writable: Sequence[Path] = (),
        network: bool = False,
        cwd: Path | None = None,
    ) -> list[str]:
        """The full command line: bwrap (when sandboxed), the limits bootstrap, ``argv``."""
        if not argv or not os.path.isabs(argv[0]):
            raise ValueError("a sandboxed run needs the program's absolute path")
        inner = [*limits_prefix(self.config.bootstrap_python, self.config.limits), *argv]
        if self.config.bwrap is None:
            return inner
        args = [] if network else ["--unshare-net"]
        mounts = plan_mounts(
            hidden=self.config.hidden_paths,
            readable=(*self.config.readable_paths, *readable),
            writable=writable,
        )
        args += mount_args(mounts, self.config.tmp_size_mb)
        args += ["--chdir", str(cwd or "/")]
        return self.config.confinement.wrap(self.config.bwrap, args, inner)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        readable: Sequence[Path] = (),
        writable: Sequence[Path] = (),
        network: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> CommandResult:
        """Run ``argv`` confined, seeing ``readable`` and changing only ``writable``.

        ``cwd`` must be one of those folders (or None: ``/``). Errors and timeouts are
        those of ``infra.subprocess.run_command``.
        """
        command = self.command(argv, readable=readable, writable=writable, network=network, cwd=cwd)
        return await run_command(
            command,
            timeout=timeout,
            env=self.environment(env),
            cwd=cwd if cwd is not None else Path("/"),
        )
