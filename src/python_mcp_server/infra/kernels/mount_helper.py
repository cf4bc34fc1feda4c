"""Detached mounts for a server that is not root: a helper in a mount namespace of its own.

``detached_mounts.detach`` needs ``CAP_SYS_ADMIN`` over the mount namespace the path is
in; a server that is not root has it over none. ``MountHelper`` starts one small process
that makes a user namespace (the server's uid and gid mapped to themselves, so it holds
every capability over namespaces it owns and none over the host) and, owned by it, a
copy of the server's mount namespace: the same folders at the same paths. On request it
makes the detached mount of a path there (``open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)``,
then read-only, ``nosuid``, ``nodev``) and hands the descriptor back on its socket. A
forked sandboxed kernel attaches it with ``move_mount`` in its own mount namespace
(``isolation_program.py``), which Linux (6.18 here) accepts from a tree cloned in another
user namespace's mount namespace; ``supported``, at the server's start, checks both on
this host: a detached mount made, then attached by a probe process as a child would
(user namespaces nested two deep, a mount namespace of its own).

The helper runs only the server's own code: the server's interpreter with ``-I -S`` (no
site-packages, no ``.pth`` files, no variables), the standard library and the text of
``detached_mounts.py``. It asks nothing of its requests but a path and whether the copy
is read-only, ends when the server's end of its socket closes (the server ended), and is
started again at the next request if it died.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from python_mcp_server.infra.kernels import detached_mounts

#: The helper's program: ``sys.argv[1]`` is the text of ``detached_mounts.py``.
_PROGRAM = r"""
import ctypes, json, os, socket, sys
tools = {"__name__": "detached_mounts"}
exec(sys.argv[1], tools)
control = socket.socket(fileno=0)
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
    error = ctypes.get_errno()
    control.send(f"unshare: {os.strerror(error)}".encode())
    sys.exit(1)
for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                   ("gid_map", f"{gid} {gid} 1")):
    with open(f"/proc/self/{name}", "w") as handle:
        handle.write(text)
control.send(b"ready")
while True:
    data = control.recv(65536)
    if not data:
        break
    request = json.loads(data)
    try:
        fd = tools["detach"](request["path"], read_only=bool(request["read_only"]))
    except OSError as exc:
        control.send(f"error: {exc}".encode())
        continue
    socket.send_fds(control, [b"ok"], [fd])
    os.close(fd)
"""

#: Attaches the detached mount on descriptor ``sys.argv[1]`` as a forked kernel would: in a mount
#: namespace owned by a user namespace nested in another (the template's), both siblings
#: of the helper's, under a tmpfs of its own at /tmp.
_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def check(result, what):
    if result < 0:
        raise OSError(ctypes.get_errno(), what)
def user_namespace():
    uid, gid = os.getuid(), os.getgid()
    check(libc.unshare(0x10000000), "unshare(user)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
user_namespace()
user_namespace()
check(libc.unshare(0x00020000), "unshare(mount)")
check(libc.mount(None, b"/", None, 0x4000 | (1 << 18), None), "mount private")
check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None), "mount tmpfs")
os.mkdir("/tmp/probe")
check(libc.syscall(429, int(sys.argv[1]), b"", -100, b"/tmp/probe", 0x4), "move_mount")
"""

#: Seconds a request or the helper's start may take.
TIMEOUT = 30.0


class MountHelperError(OSError):
    """The helper could not start or could not make a detached mount."""


class MountHelper:
    """The helper process, started on first use; ``detach`` is blocking and thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    def detach(self, path: Path, *, read_only: bool) -> int:
        """A descriptor holding a detached copy of the mount tree at ``path`` (as
        ``detached_mounts.detach``); the caller closes it."""
        request = json.dumps({"path": os.fspath(path), "read_only": read_only}).encode()
        with self._lock:
            control = self._started()
            try:
                control.send(request)
                answer, fds, _, _ = socket.recv_fds(control, 4096, 1)
            except OSError as exc:
                self._end()
                raise MountHelperError(f"the mount helper did not answer: {exc}") from exc
        if answer == b"ok" and len(fds) == 1:
            return fds[0]
        for fd in fds:
            os.close(fd)
        if not answer:
            with self._lock:
                self._end()
        raise MountHelperError(answer.decode("utf-8", "replace") or "the mount helper ended")

    def _started(self) -> socket.socket:
        if self._control is not None and self._process is not None:
            if self._process.poll() is None:
                return self._control
            self._end()
        server_end, helper_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        source = Path(detached_mounts.__file__).read_text(encoding="utf-8")
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _PROGRAM, source],
                stdin=helper_end.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={},
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            server_end.close()
            raise MountHelperError(f"the mount helper did not start: {exc}") from exc
        finally:
            helper_end.close()
        server_end.settimeout(TIMEOUT)
        try:
            hello = server_end.recv(4096)
        except OSError as exc:
            hello = str(exc).encode()
        self._process, self._control = process, server_end
        if hello != b"ready":
            self._end()
            detail = hello.decode("utf-8", "replace") or "it ended"
            raise MountHelperError(f"the mount helper did not start: {detail}")
        return server_end

    def _end(self) -> None:
        if self._control is not None:
            self._control.close()
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process, self._control = None, None

    def close(self) -> None:
        """End the helper (it ends by itself too when the server's end closes)."""
        with self._lock:
            self._end()

    def supported(self, folder: Path) -> str | None:
        """None when the helper makes detached mounts here and a process in a nested user
        namespace can attach them (``_PROBE``), else why not."""
        try:
            fd = self.detach(folder, read_only=True)
        except OSError as exc:
            return str(exc)
        try:
            probe = subprocess.run(
                [sys.executable, "-I", "-S", "-c", _PROBE, str(fd)],
                pass_fds=(fd,),
                capture_output=True,
                env={},
                cwd="/",
                timeout=TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the attach probe did not run: {exc}"
        finally:
            os.close(fd)
        if probe.returncode != 0:
            lines = probe.stderr.decode("utf-8", "replace").strip().splitlines()
            return "a nested user namespace cannot attach them: " + (
                lines[-1] if lines else f"exit {probe.returncode}"
            )
        return None
