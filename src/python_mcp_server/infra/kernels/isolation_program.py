"""How a kernel forked by a sandboxed template isolates itself before any of its code runs.

Shipped as text (standard library only) in a sandboxed template's configuration and
executed once in the template (``template_program.py``); ``isolate`` runs in each forked
child. Everything a bubblewrap kernel gets from bubblewrap, the child makes itself, from
a plan the server wrote (``sandbox_fork.isolation_plan``, the same mount list a bwrap
kernel gets):

1. the first child (the waiter) leads its own session, says hello on its control socket
   (the server reads its host pid from the socket's credentials), and waits until the
   server has moved it into the kernel's cgroups;
2. it makes a user namespace (its own uid and gid mapped to themselves; under a server
   that is not root it then sets its process limit, ``nproc``, which counts the
   processes of that namespace) and, owned by it,
   mount, pid, ipc, uts and cgroup namespaces, and a network namespace unless the kernel
   has the host's network; then forks the init of the new pid namespace (pid 1) and
   waits for it, ending with its status (the init dies with it: ``PR_SET_PDEATHSIG``);
3. the init makes every mount private, mounts its own /proc and devpts, then in order
   each planned mount: fresh size-capped tmpfs folders (/tmp, /dev/shm, /run and every
   hidden folder, so nothing the template or another child wrote is visible or shared),
   folders, and the binds, which arrive as detached mounts the server made
   (``detached_mounts.py``: its own runtime folder, the workspace, its session package
   folder, the egress socket; read-only ones already read-only). /dev becomes read-only;
4. it sets the host name, brings its loopback up, drops every capability (all sets, the
   bounding set included), sets ``no_new_privs``, checks all of that in
   /proc/self/status, installs the kernels' seccomp filter, tells the server it is
   isolated and closes its control socket. A kernel under ``allowlist`` (``listen``)
   gets no forwarder process: with that message the init hands the server a TCP socket
   listening on the egress proxy's port of its loopback, which the proxy serves itself;
5. it forks the kernel (pid 2, as in a bubblewrap sandbox, so signals it sends itself
   work as anywhere) and stays its init: it reaps orphans and ends with the kernel,
   which ends everything left in the namespace.

The waiter and the init then replace this interpreter with ``reaper.py``'s program (sent
in the plan), which does the same waiting in a few pages: in Python each kept about
1.3 MB of the template's pages it had copied.

Any failure ends the child before user code could run; the server then starts the kernel
the ordinary way.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 1 << 18
ST_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC}
SYS_MOVE_MOUNT = 429
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    def raw(text: str | None) -> bytes | None:
        return None if text is None else text.encode()

    result = _libc.mount(raw(source), raw(target), raw(fstype), flags, raw(data or None))
    _check(result, f"mount {target}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _own_user_namespace() -> None:
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(user)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def become_reaper(program: str | None, argv: list[str]) -> None:
    """Replace this process with ``reaper.py``'s program (``program``, hexadecimal), run
    with ``argv``; return only where that cannot be done (the caller then does the same
    in Python)."""
    if not program:
        return
    import fcntl

    try:
        code = os.memfd_create("reaper", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except OSError:
        return
    try:
        os.write(code, bytes.fromhex(program))
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(code, fcntl.F_ADD_SEALS, seals)
        os.execve(code, ["reaper", *argv], {})
    except OSError:
        os.close(code)


def _reap_until(child: int, alive: int = -1, program: str | None = None) -> None:
    """Hold nothing but ``alive`` (a pipe the child watches), reap every child that ends,
    and end with ``child``'s status once it ended (a pid 1: with it, its namespace).

    ``program`` (``reaper.py``, hexadecimal) does that in a few pages instead of this
    interpreter's copies of the template's: it replaces this process when it can."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if alive >= 0:
        os.closerange(0, alive)
        os.set_inheritable(alive, True)
    os.closerange(alive + 1, os.sysconf("SC_OPEN_MAX"))
    become_reaper(program, [str(child)])  # returns only if it cannot
    while True:
        try:
            pid, status = os.wait()
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            break
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def _move(fd: int, target: str) -> None:
    if not os.path.lexists(target):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, 0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
    result = _libc.syscall(
        SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH
    )
    _check(result, f"move_mount {target}")
    os.close(fd)


def _mounts(plan: list[list[Any]], fds: list[int]) -> None:
    """Mount the plan; then check that every writable mount in view is the kernel's own."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    dev = None
    own: set[int] = set()  # devices of the file systems mounted here
    writable: set[str] = set()  # targets of writable binds
    for entry in plan:
        kind, path = entry[0], entry[1]
        if kind == "proc":
            _mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            own.add(os.stat(path).st_dev)
        elif kind == "dev":  # the template's /dev nodes, read-only; a devpts of its own
            dev = path
            _mount(
                "devpts",
                f"{path}/pts",
                "devpts",
                MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=620",
            )
            own.add(os.stat(f"{path}/pts").st_dev)
        elif kind == "tmpfs":
            os.makedirs(path, 0o755, exist_ok=True)
            _mount(
                "tmpfs",
                path,
                "tmpfs",
                MS_NOSUID | MS_NODEV,
                f"size={int(entry[2])},mode={int(entry[3]):o}",
            )
            own.add(os.stat(path).st_dev)
        elif kind == "dir":
            os.makedirs(path, int(entry[2]), exist_ok=True)
            os.chmod(path, int(entry[2]))
        elif kind == "bind":
            fd = fds[int(entry[2])]
            if not os.statvfs(f"/proc/self/fd/{fd}").f_flag & os.ST_RDONLY:
                writable.add(path)
            _move(fd, path)
        else:
            raise ValueError(f"unknown mount kind {kind!r}")
    if dev is not None:
        flags = os.statvfs(dev).f_flag
        kept = sum(bit for st, bit in ST_FLAGS.items() if flags & st)
        _mount(None, dev, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
    _check_writable(own, writable)


def _unescape(field: str) -> str:
    """A mountinfo path (space, tab, newline and backslash written as octal escapes)."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _check_writable(own: set[int], writable: set[str]) -> None:
    """Every writable mount whose mount point is in view must be one mounted here (a
    fresh tmpfs, /proc, devpts) or a writable bind of the plan; a device node is fine.
    A writable mount of the template's (its /tmp, /dev) shared with other kernels would
    fail this: the child ends before any user code."""
    import stat

    with open("/proc/self/mountinfo") as table:
        lines = table.read().splitlines()
    for line in lines:
        fields = line.split()
        point, options = _unescape(fields[4]), fields[5].split(",")
        if "rw" not in options:
            continue
        try:
            found = os.stat(point)
        except OSError:
            continue  # under a folder laid over it: out of reach
        if stat.S_ISCHR(found.st_mode) or found.st_dev in own or point in writable:
            continue
        if os.statvfs(point).f_flag & os.ST_RDONLY:
            continue  # a read-only mount lies over it
        raise OSError(f"a writable mount at {point} is not the kernel's own")


def _loopback_up() -> None:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def _drop_capabilities() -> None:
    for number in range(64):
        result = _libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0)
        if result < 0 and ctypes.get_errno() != 22:  # EINVAL: no such capability
            _check(result, "drop bounding set")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all zero
    number = SYS_CAPSET[os.uname().machine.replace("arm64", "aarch64")]
    _check(_libc.syscall(number, header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(fields[name].strip(), 16) != 0:
            raise OSError(f"{name} is not empty after the drop")
    if fields["NoNewPrivs"].strip() != "1":
        raise OSError("no_new_privs is not set")


def _seccomp(program: bytes) -> None:
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    prog = SockFprog(len(program) // 8, program)
    result = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)
    _check(result, "seccomp")


def isolate(spec: dict[str, Any], fds: list[int]) -> None:
    """Run in the forked child; returns only in the isolated kernel (see the docstring).

    ``fds``: the control socket first, then the detached mounts the plan names by index."""
    control = socket.socket(fileno=fds[0])
    os.setsid()
    control.send(b"hello")  # the server reads our pid from the credentials, then moves us
    if control.recv(16) != b"go":
        os._exit(1)
    _own_user_namespace()
    if spec.get("nproc"):  # counted in this user namespace, as in a bubblewrap kernel's
        import resource

        limit = int(spec["nproc"])
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    if spec.get("own_network", True):
        flags |= CLONE_NEWNET
    _check(_libc.unshare(flags), "unshare")
    alive_r, alive_w = os.pipe()
    child = os.fork()
    if child:
        os.close(alive_r)
        _reap_until(child, alive_w, spec.get("reaper"))
    os.close(alive_w)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    import select

    if select.select([alive_r], [], [], 0)[0]:  # the waiter died before the line above
        os._exit(1)
    os.close(alive_r)
    _mounts(spec["mounts"], fds)
    _check(_libc.sethostname(b"sandbox", 7), "sethostname")
    if flags & CLONE_NEWNET:
        _loopback_up()
    try:
        _write("/proc/sys/user/max_user_namespaces", "0")
    except OSError:
        pass  # the seccomp filter refuses new namespaces anyway
    _drop_capabilities()
    _seccomp(bytes.fromhex(spec["seccomp"]))
    if spec.get("listen"):  # the egress proxy's port on its loopback, served by the server
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", int(spec["listen"])))
            listener.listen(64)
            socket.send_fds(control, [b"isolated"], [listener.fileno()])
    else:
        control.send(b"isolated")
    control.close()
    sys.stdout.flush()
    kernel = os.fork()  # pid 2, as in a bubblewrap sandbox; this one stays its init
    if kernel:
        _reap_until(kernel, program=spec.get("reaper"))
