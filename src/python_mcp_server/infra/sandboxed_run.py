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
- in a network namespace of its own: with nothing in it unless the call asks for network
  (installs); then, when the runner has an egress (``Egress``), a socket of the server's
  egress proxy under that access (the package index hosts) bound at ``SANDBOX_SOCKET`` and
  the forwarder on ``127.0.0.1:PROXY_PORT`` started by the bootstrap before the program,
  with the proxy variables set: code an install builds (an sdist's ``setup.py``) reaches
  the index hosts through the proxy and nothing else (not the host's loopback services,
  not link-local addresses). Without an egress a run asking for network still gets none.

Without a sandbox (``MCP_SANDBOX=none``, or ``auto`` where bubblewrap does not work) the
environment is still scrubbed, the limits still set and the state folder never passed,
but the program runs as the server's user with the server's view of the file system:
that mode is not a security boundary (and the host's network is the run's).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from python_mcp_server.infra.kernels.confine import Confinement
from python_mcp_server.infra.kernels.limits import ResourceLimits
from python_mcp_server.infra.kernels.mounts import mount_args, plan_mounts
from python_mcp_server.infra.network.access import NetworkAccess
from python_mcp_server.infra.network.forwarder import (
    SANDBOX_SOCKET,
    forwarder_config,
    proxy_environment,
)
from python_mcp_server.infra.network.proxy import EgressProxy
from python_mcp_server.infra.subprocess import CommandResult, run_command

#: ``python -I -S -c`` program: set the rlimits, start the forwarder if any (bind the
#: sandbox's loopback port, fork a fresh ``-I -S`` interpreter serving it), then become the
#: real command (argv[1:]).
_EXEC_BOOTSTRAP = """\
import os as _o, resource as _r, sys as _s
for _n, _v in {limits}:
    _n = getattr(_r, _n)
    _h = _r.getrlimit(_n)[1]
    _v = _v if _h == _r.RLIM_INFINITY else min(_v, _h)
    _r.setrlimit(_n, (_v, _v))
_f = {forwarder}
if _f:
    import socket as _k
    _l = _k.socket()
    _l.setsockopt(_k.SOL_SOCKET, _k.SO_REUSEADDR, 1)
    _l.bind(("127.0.0.1", _f["port"]))
    _l.listen(64)
    _l.set_inheritable(True)
    if _o.fork() == 0:
        try:
            _a = ["-I", "-S", "-c", _f["loop"], str(_l.fileno()), _f["socket"]]
            _o.execv(_s.executable, [_s.executable, *_a])
        finally:
            _o._exit(127)
    _l.close()
_o.execv(_s.argv[1], _s.argv[1:])
"""


@dataclass(frozen=True)
class Egress:
    """How a sandboxed run that asks for network reaches it: the server's egress proxy."""

    proxy: EgressProxy
    #: What such a run may reach (decided by the server: the package index hosts).
    access: NetworkAccess
    #: A server-owned folder for the per-run proxy sockets.
    socket_dir: Path


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
    #: Network for runs that ask for it (sandboxed only); None: such runs get none.
    egress: Egress | None = None


def limits_prefix(
    python: str, limits: ResourceLimits, forwarder: dict[str, object] | None = None
) -> list[str]:
    """``python -I -S -c <bootstrap>``: put before a command to start it under ``limits``
    (after starting ``forwarder``, a ``forwarder_config()``)."""
    pairs = ", ".join(f"({name!r}, {value})" for name, value in limits.rlimits())
    if not pairs and forwarder is None:
        return []
    source = _EXEC_BOOTSTRAP.format(
        limits=f"({pairs},)" if pairs else "()", forwarder=repr(forwarder)
    )
    return [python, "-I", "-S", "-c", source]


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
        cwd: Path | None = None,
        egress_socket: Path | None = None,
    ) -> list[str]:
        """The full command line: bwrap (when sandboxed) in a network namespace of its own,
        the bootstrap (limits; the forwarder to ``egress_socket``, a proxy socket), ``argv``."""
        if not argv or not os.path.isabs(argv[0]):
            raise ValueError("a sandboxed run needs the program's absolute path")
        if self.config.bwrap is None:
            return [*limits_prefix(self.config.bootstrap_python, self.config.limits), *argv]
        forwarder = forwarder_config() if egress_socket is not None else None
        inner = [
            *limits_prefix(self.config.bootstrap_python, self.config.limits, forwarder),
            *argv,
        ]
        args = ["--unshare-net"]
        mounts = plan_mounts(
            hidden=self.config.hidden_paths,
            readable=(*self.config.readable_paths, *readable),
            writable=writable,
        )
        args += mount_args(mounts, self.config.tmp_size_mb)
        if egress_socket is not None:  # last: /run is a fresh tmpfs by now
            args += ["--perms", "0755", "--dir", str(SANDBOX_SOCKET.parent)]
            args += ["--ro-bind", str(egress_socket), str(SANDBOX_SOCKET)]
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
        """Run ``argv`` confined, seeing ``readable`` and changing only ``writable``;
        ``network``: through the egress proxy when sandboxed (the host's network without
        a sandbox).

        ``cwd`` must be one of those folders (or None: ``/``). Errors and timeouts are
        those of ``infra.subprocess.run_command``.
        """
        egress = self.config.egress if network and self.sandboxed else None
        if egress is None:
            command = self.command(argv, readable=readable, writable=writable, cwd=cwd)
            return await run_command(
                command,
                timeout=timeout,
                env=self.environment(env),
                cwd=cwd if cwd is not None else Path("/"),
            )
        egress.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = egress.socket_dir / f"egress-run-{uuid.uuid4().hex[:10]}.sock"
        await egress.proxy.listen(path, egress.access)
        try:
            command = self.command(
                argv, readable=readable, writable=writable, cwd=cwd, egress_socket=path
            )
            # Everything through the forwarder, loopback names included: the sandbox's own
            # loopback holds nothing else, and the proxy decides.
            variables = {**proxy_environment(), "NO_PROXY": "", "no_proxy": ""}
            return await run_command(
                command,
                timeout=timeout,
                env=self.environment({**variables, **(env or {})}),
                cwd=cwd if cwd is not None else Path("/"),
            )
        finally:
            await egress.proxy.close_listener(path)
