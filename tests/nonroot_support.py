"""A server that is not root, for real, from a test run as root (CI runs as root).

``as_server_user(argv)`` is the command that runs ``argv`` as ``SERVER_UID``, a uid with
no entry in the user database (so no other process of the machine is that user: not
``nobody``, which root servers' kernels run as), no groups and no capabilities. The
server's Python must be reachable to that user: where it lies in a folder only root may
pass (``/root`` holding a pyenv, say), the command first makes a mount namespace of its
own (``unshare --mount``, as root), lays an empty folder over each such folder and binds
back into it only the server's interpreter, site-packages and this checkout, as the
server's sandbox does for its kernel user. Nothing else of the host changes: the server
is then an ordinary process of an ordinary user.

``user_folder(prefix)`` makes a folder that user owns (outside the test's own tmp, which
only root may pass); ``non_root_server(env, log_dir)`` runs the real command that way.
Where the tests themselves do not run as root, their own user is that user and the
command runs as it is. Skipped, or failed under ``PMCP_REQUIRE_SANDBOX``, where that user
cannot make user namespaces.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from python_mcp_server.infra.kernels.mounts import closed_parents, resolved, under
from python_mcp_server.server.kernel_isolation import server_python_paths
from tests.e2e.conftest import COMMAND, LaunchedServer, assert_gone
from tests.helpers import free_port

#: Where the search for a uid no user holds starts.
_FIRST_UID = 42000


def _free_uid() -> int:
    if os.geteuid() != 0:  # the tests' own user is one already
        return os.getuid()
    uid = _FIRST_UID
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


SERVER_UID = _free_uid()
#: The bearer token of ``non_root_server``.
TOKEN = "non-root-server-token-3e5d"
REPO = Path(__file__).resolve().parents[1]


def require_non_root_server() -> None:
    """Fail (in CI) or skip (elsewhere) where a non-root server cannot be had here."""
    problem = None
    if not (shutil.which("unshare") and shutil.which("setpriv")):
        problem = "util-linux unshare and setpriv are needed"
    else:
        probe = subprocess.run(
            as_server_user(["/bin/sh", "-c", "exec unshare --user true"]),
            capture_output=True,
            check=False,
            timeout=30,
        )
        if probe.returncode != 0:
            problem = f"a user cannot make user namespaces here: {probe.stderr.decode()}"
    if problem is None:
        return
    if os.environ.get("PMCP_REQUIRE_SANDBOX"):
        pytest.fail(f"a non-root server is required here: {problem}")
    pytest.skip(problem)


def user_folder(prefix: str) -> Path:
    """A new folder ``SERVER_UID`` owns (mode 0700), outside root's own folders."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if os.geteuid() == 0:
        os.chown(path, SERVER_UID, SERVER_UID)
    return path


def _needed() -> list[Path]:
    found = {resolved(path) for path in server_python_paths()}
    found.add(REPO)
    return sorted(found)


def as_server_user(argv: list[str]) -> list[str]:
    """``argv`` run as ``SERVER_UID`` (see the module docstring); ``argv`` itself where
    the tests do not run as root."""
    if os.geteuid() != 0:
        return argv
    needed = _needed()
    closed = closed_parents(needed, ())
    lines = ["set -e"]
    if closed:
        stage = tempfile.mkdtemp(prefix="pmcp-stage-")
        for index, folder in enumerate(closed):
            inside = [path for path in needed if under(path, [folder]) and path != folder]
            inside = [path for path in inside if not under(path.parent, inside)]
            for number, path in enumerate(inside):
                spot = shlex.quote(f"{stage}/{index}-{number}")
                lines += [f"mkdir -p {spot}", f"mount --rbind {shlex.quote(str(path))} {spot}"]
            lines.append(f"mount -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(str(folder))}")
            for number, path in enumerate(inside):
                spot = shlex.quote(f"{stage}/{index}-{number}")
                target = shlex.quote(str(path))
                lines += [f"mkdir -p {target}", f"mount --move {spot} {target}"]
        lines.append(f"rm -r {shlex.quote(stage)}")  # empty again: everything moved
    uid = str(SERVER_UID)
    lines.append(f'exec setpriv --reuid={uid} --regid={uid} --clear-groups -- "$@"')
    script = "\n".join(lines)
    wrapped = ["/bin/sh", "-c", script, "sh", *argv]
    if not closed:
        return wrapped
    return ["unshare", "--mount", "--propagation", "private", "--", *wrapped]


@contextlib.contextmanager
def non_root_server(env: dict[str, str], log_dir: Path) -> Iterator[LaunchedServer]:
    """The real ``python-mcp-server`` command as ``SERVER_UID`` over HTTP (token
    ``TOKEN``), its home, state folder (``<home>/state``) and workspace its own; stopped
    at the end, which must leave no kernel behind."""
    require_non_root_server()
    home = user_folder("pmcp-home-")
    workspace = user_folder("pmcp-ws-")
    port = free_port()
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MCP_"))},
        "HOME": str(home),
        "MCP_STATE_DIR": str(home / "state"),
        "MCP_AUTH_TOKEN": TOKEN,
        "MCP_SESSION_IDLE_TIMEOUT": "0",
        **env,
    }
    log_path = Path(tempfile.mkstemp(prefix="server-", suffix=".log", dir=log_dir)[1])
    command = [COMMAND, "--port", str(port), "--workspace-dir", str(workspace)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            as_server_user(command),
            env=variables,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = LaunchedServer(process, port, workspace, log_path, env=variables)
    try:
        server.wait_ready()
        assert psutil.Process(process.pid).uids().real == SERVER_UID
        yield server
    finally:
        code = server.stop()
        shutil.rmtree(home)
        shutil.rmtree(workspace)
        assert code == 0, f"server exited with {code}:\n{server.log()}"
        assert_gone(server.kernels_seen)
