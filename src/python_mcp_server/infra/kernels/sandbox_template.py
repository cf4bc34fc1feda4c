"""A sandboxed fork template, and the server's side of each child's start-up.

``SandboxTemplate`` is the running template of ``sandbox_fork.py``: requests and the
descriptors they hand over go to it on a sequenced-packet socket, its answers come back on
its standard output. For each child the server then reads the hello (``credentials_pid``:
the child's host pid from the socket's credentials), lets it isolate itself and takes the
egress listener it hands over (``release``, checked by ``loopback_listener``).
``isolation_plan`` translates a bubblewrap kernel's mount options into the child's plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.template import ForkTemplate

#: The child's descriptors: control socket, log, then the detached mounts.
FIRST_MOUNT_FD = 2
#: Most parents looked at to find a template's pid above a process (a kernel's waiter is
#: a few below it: the bubblewraps' processes, the template's pid 1, the template proper).
ANCESTRY_LIMIT = 64


def isolation_plan(args: list[str]) -> tuple[list[list[Any]], list[tuple[Path, bool]], bool]:
    """Translate a bwrap kernel's mount options (``BwrapLauncher.bwrap_args``) into the
    child's plan: the operations in order, the (source, read-only) of each detached mount
    they name by descriptor index, and whether the kernel has a network namespace of its
    own. An option it does not know is a ValueError: such a kernel is not forked."""
    ops: list[list[Any]] = []
    sources: list[tuple[Path, bool]] = []
    own_network = False
    mode: int | None = None
    size: int | None = None
    index = 0
    while index < len(args):
        option = args[index]
        if option == "--unshare-net":
            own_network, index = True, index + 1
        elif option == "--perms":
            mode, index = int(args[index + 1], 8), index + 2
        elif option == "--size":
            size, index = int(args[index + 1]), index + 2
        elif option in ("--ro-bind", "--bind"):
            source, target = args[index + 1], args[index + 2]
            index += 3
            if (source, target) == ("/", "/") and option == "--ro-bind":
                continue  # the template's view is already the read-only system
            ops.append(["bind", target, FIRST_MOUNT_FD + len(sources)])
            sources.append((Path(source), option == "--ro-bind"))
        elif option in ("--dev", "--proc"):
            ops.append([option[2:], args[index + 1]])
            index += 2
        elif option == "--tmpfs":
            if size is None:
                raise ValueError(f"no size for the tmpfs at {args[index + 1]}")
            ops.append(["tmpfs", args[index + 1], size, 0o755 if mode is None else mode])
            mode, size, index = None, None, index + 2
        elif option == "--dir":
            ops.append(["dir", args[index + 1], 0o755 if mode is None else mode])
            mode, index = None, index + 2
        else:
            raise ValueError(f"no isolation for the bubblewrap option {option}")
    return ops, sources, own_network


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc/<pid>/stat``; None once it is gone.

    The process's name comes before it in parentheses and may itself hold parentheses,
    spaces and digits (a kernel names its own processes), so the fields are read after
    the last closing parenthesis."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            line = stat_file.read()
    except OSError:
        return None
    fields = line[line.rfind(b")") + 1 :].split()  # state, parent, ...
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def credentials_pid(control: socket.socket, timeout: float) -> int:
    """Wait for the child's hello; its pid as the kernel translated it for us."""
    control.settimeout(timeout)
    message, ancillary, _, _ = control.recvmsg(16, socket.CMSG_SPACE(12))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            pid, _, _ = struct.unpack("iII", data[:12])
            if message == b"hello" and pid > 0:
                return int(pid)
    raise KernelStartError(f"the forked kernel did not say hello ({message!r})")


def release(control: socket.socket, timeout: float, port: int | None) -> socket.socket | None:
    """Let the child isolate itself; wait until it says it did. With ``port``: return the
    socket it hands over with that, checked to be TCP listening on its 127.0.0.1:port."""
    control.settimeout(timeout)
    control.send(b"go")
    # Room for the descriptor and the credentials that come with every message here.
    space = socket.CMSG_SPACE(struct.calcsize("i")) + socket.CMSG_SPACE(12)
    answer, ancillary, _, _ = control.recvmsg(16, space)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds += struct.unpack(f"{usable // 4}i", data[:usable])
    if answer != b"isolated":
        for fd in fds:
            os.close(fd)
        raise KernelStartError(f"the forked kernel did not isolate itself ({answer!r})")
    if port is None and not fds:
        return None
    if port is None or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise KernelStartError("the forked kernel handed over an unexpected descriptor")
    return loopback_listener(fds[0], port)


def loopback_listener(fd: int, port: int) -> socket.socket:
    """The child's egress socket: TCP, listening, on 127.0.0.1:port, else an error."""
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        raise KernelStartError("the forked kernel's egress listener is not a socket")
    listener = socket.socket(fileno=fd)
    try:
        listening = listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        kind = (listener.family, listener.type)
        address = listener.getsockname()
    except OSError as exc:
        listener.close()
        raise KernelStartError(f"the forked kernel's egress listener: {exc}") from exc
    if (
        kind != (socket.AF_INET, socket.SOCK_STREAM)
        or not listening
        or address
        != (
            "127.0.0.1",
            port,
        )
    ):
        listener.close()
        raise KernelStartError(f"the forked kernel's egress listener is not its {port}")
    listener.setblocking(False)
    return listener


class SandboxTemplate(ForkTemplate):
    """A sandboxed template: requests (with descriptors) go over a sequenced-packet
    socket; closing it ends the template proper while its sandbox lives on for the
    kernels it forked."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        log_path: Path,
        control: socket.socket,
        cgroups: list[Path],
    ) -> None:
        super().__init__(process, log_path)
        self.control = control
        self.cgroups = cgroups
        self.retired = False

    def is_alive(self) -> bool:
        return super().is_alive() and not self.retired

    def descends(self, pid: int) -> bool:
        """Whether ``pid`` is a process of this template's sandbox: its parents read from
        /proc, one file each (psutil's ``parents`` made a Process of each, about 0.6 ms
        of the server's CPU per kernel start)."""
        for _ in range(ANCESTRY_LIMIT):
            parent = parent_pid(pid)
            if parent is None or parent <= 0:
                return False
            if parent == self.pid:
                return True
            pid = parent
        return False

    async def fork_with(self, request: dict[str, Any], fds: list[int], timeout: float) -> int:
        """Ask for a kernel, handing it ``fds``; return its pid in the template's namespace."""
        if not self.is_alive():
            raise KernelStartError("the fork template is not running")
        number = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._forks[number] = future
        data = json.dumps({**request, "id": number}).encode()
        try:
            await asyncio.to_thread(socket.send_fds, self.control, [data], fds)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise KernelStartError(f"the fork template did not fork a kernel: {exc}") from exc
        finally:
            self._forks.pop(number, None)

    def retire(self) -> None:
        """End the template proper (its end of input); its kernels keep running."""
        self.retired = True
        with contextlib.suppress(OSError):
            self.control.close()

    def log_tail(self, limit: int = 600) -> str:
        """The end of the template's log (its children's isolation failures land there)."""
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - limit))
            text = log.read().decode("utf-8", "replace").strip()
            return f": {text}" if text else ""
        return ""

    @property
    def reader(self) -> asyncio.Task[None]:
        """The task reading the template's answers (it ends with the sandbox)."""
        return self._reader
