"""The command that starts a sandboxed fork template (``sandbox_fork.py``).

The template is the server's own interpreter (never an environment's) running the kernel
program in template mode, inside a sandbox laid out like a kernel's less everything a
kernel gets of its own: the read-only system, empty /tmp, /run and hidden folders, the
server's Python re-exposed, and hidden too whatever the launch request names of its own
(the workspace, the environment, local package folders), no runtime folder, a network
namespace unless kernels get the host's. Its own user namespace holds no capabilities;
its own pid namespace has a fully visible /proc (so its children can mount theirs); the
template seccomp filter lets its children make their namespaces.

- ``root_argv`` (a root server): an outer, privileged bubblewrap lays out the view (it
  can reach an interpreter in a folder only root may pass) in a pid namespace of its own
  (which ends everything in it when the server dies), ``setpriv`` becomes the kernel
  user with no capabilities and ``no_new_privs``, and an inner, unprivileged bubblewrap
  makes the user and pid namespaces;
- ``user_argv`` (a server that is not root): one unprivileged bubblewrap does all of it,
  as the server's own user (as a non-root server's kernels run). It is not given
  ``--disable-userns``: its children must make user namespaces; each child then sets its
  own ``max_user_namespaces`` to 0 and installs the kernels' filter, which refuses them.

Either way a shell first joins the template's cgroups (if any) and opens the template
filter for ``--seccomp``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_mcp_server.infra.kernels import environment_program, isolation_program, reaper
from python_mcp_server.infra.kernels.confine import SECCOMP_FD, joined
from python_mcp_server.infra.kernels.local import KERNEL_ARGS, program_source, template_source
from python_mcp_server.infra.kernels.mounts import mount_args, plan_mounts
from python_mcp_server.infra.kernels.privileges import DROP_CAPABILITIES, drop_argv
from python_mcp_server.infra.kernels.sandbox import SandboxConfig
from python_mcp_server.infra.kernels.template_view import trusted_path

#: Size of a template's own /tmp and hidden folders, MiB (its kernels get fresh ones).
TEMPLATE_TMP_MB = 64
#: The namespaces and session both forms give the template.
_NAMESPACES = ("--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-uts")


@dataclass(frozen=True)
class TemplateSpec:
    """What one template is started with, from the launcher and the launch request."""

    config: SandboxConfig
    #: The request's own folders, hidden from the template (``hidden_from_template``).
    hidden: tuple[Path, ...]
    #: Whether kernels get the host's network (then so does the template).
    shared_network: bool
    preload: tuple[str, ...]
    extra_args: tuple[str, ...]
    #: The rlimits the template sets on itself (its children inherit them).
    limits: tuple[tuple[str, int], ...]
    #: The compiled template filter.
    template_filter: Path


def program(spec: TemplateSpec) -> list[str]:
    """The server's interpreter running the kernel program as a sandboxed template: it
    starts with the server's site-packages (and their .pth files) only."""
    config: dict[str, Any] = {
        "mode": "template",
        "sandboxed": True,
        "preload": list(spec.preload),
        "limits": [list(pair) for pair in spec.limits],
        "kernel_args": [*KERNEL_ARGS, *spec.extra_args],  # parsed once, in the template
        "template": template_source(),
        "isolation": Path(isolation_program.__file__).read_text(encoding="utf-8"),
        "reaper": reaper.program(),  # what its pid 1 becomes (``keep``)
        "environment": Path(environment_program.__file__).read_text(encoding="utf-8"),
        "trusted_path": trusted_path(),
    }
    return [sys.executable, "-c", program_source(), json.dumps(config)]


def _inner(view: Sequence[str]) -> list[str]:
    """The unprivileged bubblewrap's options: user and pid namespaces, no capabilities,
    the template filter, then ``view``."""
    return [
        "--die-with-parent",
        "--as-pid-1",
        "--unshare-user",
        "--unshare-pid",
        "--cap-drop",
        "ALL",
        "--seccomp",
        str(SECCOMP_FD),
        *view,
        "--chdir",
        "/",
    ]


def root_argv(spec: TemplateSpec, cgroups: Sequence[Path]) -> list[str]:
    """The template's command under a root server: two bubblewraps (see the docstring)."""
    confinement = spec.config.confinement
    if confinement.user is None:
        raise ValueError("a root server's template needs the kernel user")
    plan = plan_mounts(
        hidden=(*spec.config.hidden_paths, *spec.hidden),
        readable=spec.config.readable_paths,
        writable=(),
        unprivileged=True,
    )
    outer = [
        *_NAMESPACES,
        # A pid namespace of its own, whose init (bubblewrap's, root like the outer one)
        # dies with it: then Linux ends everything inside, the inner bubblewrap included.
        # The inner one's --die-with-parent alone does not hold: its parent death signal
        # comes from the outer bubblewrap, root without capabilities, and Linux drops a
        # signal from another user (the inner one runs as the kernel user) without
        # CAP_KILL. After a server was killed, its template and kernels ran on.
        "--unshare-pid",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--cap-drop",
        "ALL",
        *(arg for cap in DROP_CAPABILITIES for arg in ("--cap-add", cap)),
    ]
    if not spec.shared_network:
        outer.append("--unshare-net")
    # The host's /proc, not one of bubblewrap's: the inner bubblewrap writes its uid
    # map there and must find a fully visible /proc to mount its own (bubblewrap as
    # root covers parts of a /proc it mounts). The template only sees the inner one.
    outer += ["--ro-bind", "/", "/", "--bind", "/proc", "/proc", "--dev", "/dev"]
    tmp = ["--perms", "1777"]  # the template's own /tmp (where its preload writes)
    outer += mount_args(plan, TEMPLATE_TMP_MB, tmp_perms=tmp)[7:]  # less /, /dev, /proc
    # With what the outer one exposes in /tmp (the server's Python, maybe).
    inner = _inner(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
    inner[-2:-2] = ["--bind", "/tmp", "/tmp"]
    drop = drop_argv(confinement.user, confinement.setpriv)
    bwrap = spec.config.bwrap
    argv = [bwrap, *outer, "--", *drop, bwrap, *inner, "--", *program(spec)]
    return joined(spec.template_filter, cgroups, argv)


def user_argv(spec: TemplateSpec, cgroups: Sequence[Path]) -> list[str]:
    """The template's command under a server that is not root: one unprivileged
    bubblewrap (an unprivileged bubblewrap covers no part of the /proc it mounts)."""
    plan = plan_mounts(
        hidden=(*spec.config.hidden_paths, *spec.hidden),
        readable=spec.config.readable_paths,
        writable=(),
    )
    view = [*_NAMESPACES, "--unshare-cgroup-try", "--hostname", "sandbox"]
    if not spec.shared_network:
        view.append("--unshare-net")
    view += mount_args(plan, TEMPLATE_TMP_MB)
    argv = [spec.config.bwrap, *_inner(view), "--", *program(spec)]
    return joined(spec.template_filter, cgroups, argv)
