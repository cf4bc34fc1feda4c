"""Confinement of a sandboxed command beyond its mounts: user, capabilities, seccomp, cgroups.

``Confinement.wrap(bwrap, mount_args, command, cgroups)`` turns a bubblewrap command into
the argv to execute; kernels, scripts and server-side sandboxed runs all go through it,
so each gets the same:

- a server that is root: bubblewrap runs privileged (no user namespace: one would map the
  kernel to host root), keeps only ``DROP_CAPABILITIES`` for the inner ``setpriv``, which
  becomes the kernel user with no capabilities and ``no_new_privs`` before the command
  starts (see ``privileges.py``);
- a server that is not root: its own user namespace, no capabilities, no nested user
  namespaces (bwrap sets ``no_new_privs`` itself);
- either way the seccomp filter of ``seccomp.py`` (``--seccomp 9``: a shell opens the
  compiled program on descriptor 9 and bwrap reads it), and the per-kernel cgroups joined
  by that same shell before bubblewrap starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.infra.kernels.privileges import DROP_CAPABILITIES, KernelUser, drop_argv

#: Namespaces common to every sandboxed command.
NAMESPACE_ARGS: tuple[str, ...] = (
    "--die-with-parent",
    "--new-session",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--hostname",
    "sandbox",
)
#: Descriptor the seccomp program is read from.
SECCOMP_FD = 9

#: $0: the seccomp program file or "-"; then cgroup.procs files up to "--"; then the command.
_JOIN_SCRIPT = (
    's=$0; while [ "$1" != -- ]; do echo 0 > "$1" || exit 125; shift; done; shift; '
    '[ "$s" = - ] && exec "$@"; exec "$@" 9<"$s"'
)


def joined(seccomp_file: Path | None, cgroups: Sequence[Path], argv: list[str]) -> list[str]:
    """``argv`` started by a shell that joins ``cgroups`` and opens the seccomp program
    on ``SECCOMP_FD`` (for ``--seccomp``) first; ``argv`` itself when there is neither."""
    if seccomp_file is None and not cgroups:
        return argv
    procs = [str(folder / "cgroup.procs") for folder in cgroups]
    seccomp = str(seccomp_file) if seccomp_file is not None else "-"
    return ["/bin/sh", "-c", _JOIN_SCRIPT, seccomp, *procs, "--", *argv]


@dataclass(frozen=True)
class Confinement:
    """The user, seccomp program and helpers every sandboxed command is confined with."""

    #: Who the command runs as; None: the server's own (non-root) user, in a user namespace.
    user: KernelUser | None = None
    #: The compiled seccomp program (a server-owned file), or None for no filter.
    seccomp_file: Path | None = None
    #: util-linux ``setpriv``; None uses the Python fallback to drop privileges.
    setpriv: str | None = None

    def bwrap_args(self) -> list[str]:
        """Namespace and capability options of bubblewrap."""
        args = list(NAMESPACE_ARGS)
        if self.user is None:
            args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        else:
            args += ["--cap-drop", "ALL"]
            for capability in DROP_CAPABILITIES:
                args += ["--cap-add", capability]
        if self.seccomp_file is not None:
            args += ["--seccomp", str(SECCOMP_FD)]
        return args

    def inner(self, command: Sequence[str]) -> list[str]:
        """The command as bubblewrap executes it: after the privilege drop, if any."""
        if self.user is None:
            return list(command)
        return [*drop_argv(self.user, self.setpriv), *command]

    def wrap(
        self,
        bwrap: str,
        mount_args: Sequence[str],
        command: Sequence[str],
        cgroups: Sequence[Path] = (),
    ) -> list[str]:
        """The full argv: [join cgroups, open seccomp] bwrap <options> -- [drop] command."""
        argv = [bwrap, *self.bwrap_args(), *mount_args, "--", *self.inner(command)]
        return joined(self.seccomp_file, cgroups, argv)

    @property
    def tmp_perms(self) -> list[str]:
        """bwrap options before a ``--tmpfs`` the command must be able to write."""
        return ["--perms", "1777"] if self.user is not None else []
