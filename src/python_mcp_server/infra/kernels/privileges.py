"""Who a sandboxed program runs as when the server is root, and what that user may write.

A root server never lets kernel code run as root: the sandboxed command starts through
``setpriv`` (util-linux), which takes the kernel user's uid and gid, clears every
supplementary group, empties all capability sets (the bounding set included) and sets
``no_new_privs``; only then is the interpreter executed. Without ``setpriv`` a tiny Python
program does the same. A server that is not root needs none of this: its kernels run as
its own user inside their user namespace.

The kernel user must write the workspace. The decision is made once per folder, when the
server creates or adopts it, never by a walk at each start: a POSIX ACL (written as the
``system.posix_acl_*`` extended attributes, no ``setfacl`` needed) grants the user
``rwx`` on the folder, and a default ACL makes everything created inside inherit it. On a
file system without ACLs the folder is handed to the user instead. The state folder and
the environments are never granted; any ACL found on them is removed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pwd
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# ACL entry tags and the xattr names (linux/posix_acl_xattr.h).
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
ACCESS_ACL = "system.posix_acl_access"
DEFAULT_ACL = "system.posix_acl_default"

#: Capabilities the sandbox keeps for ``setpriv`` alone: it drops them with the uid.
DROP_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")

#: Fallback when setpriv is missing: the same steps, then exec the command (argv[3:]).
_DROP_PROGRAM = """\
import ctypes as _c, os as _o, sys as _s
_l = _c.CDLL(None, use_errno=True)
for _n in range(64):
    _l.prctl(24, _n, 0, 0, 0)
_o.setgroups([]); _o.setgid(int(_s.argv[2])); _o.setuid(int(_s.argv[1]))
if _l.prctl(38, 1, 0, 0, 0) != 0:
    raise SystemExit("could not set no_new_privs")
_o.execvp(_s.argv[3], _s.argv[3:])
"""


@dataclass(frozen=True)
class KernelUser:
    """The unprivileged host user sandboxed programs run as."""

    name: str
    uid: int
    gid: int


def resolve_kernel_user(spec: str) -> KernelUser:
    """A user name or numeric uid; ValueError when unknown or root."""
    try:
        entry = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except (KeyError, OverflowError):
        if not spec.isdigit():
            raise ValueError(f"no user named {spec!r} on this machine") from None
        return _checked(KernelUser(spec, int(spec), int(spec)))
    return _checked(KernelUser(entry.pw_name, entry.pw_uid, entry.pw_gid))


def _checked(user: KernelUser) -> KernelUser:
    if user.uid == 0 or user.gid == 0:
        raise ValueError("the kernel user must not be root (uid or gid 0)")
    return user


def server_is_root() -> bool:
    return os.geteuid() == 0


def find_setpriv() -> str | None:
    return shutil.which("setpriv")


def drop_argv(user: KernelUser, setpriv: str | None) -> list[str]:
    """Argv prefix that becomes ``user`` with no capabilities and no_new_privs, then execs."""
    if setpriv is not None:
        return [
            setpriv,
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return [sys.executable, "-S", "-c", _DROP_PROGRAM, str(user.uid), str(user.gid)]


def _acl(mode: int, uids: list[int]) -> bytes:
    entries = [
        (_USER_OBJ, (mode >> 6) & 7, _UNDEFINED_ID),
        *((_USER, 7, uid) for uid in sorted(set(uids))),
        (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED_ID),
        (_MASK, 7, _UNDEFINED_ID),
        (_OTHER, mode & 7, _UNDEFINED_ID),
    ]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


def grant_folder(folder: Path, user: KernelUser) -> str:
    """Let ``user`` write ``folder`` and what will be created in it; says how ("acl"/"owner").

    The server's own user gets a named entry too: its sandboxed runs hold no capabilities,
    and must still write what the kernel user created there (a session's packages)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        acl = _acl(os.fstat(fd).st_mode, [user.uid, os.geteuid()])
        try:
            os.setxattr(fd, ACCESS_ACL, acl)
            os.setxattr(fd, DEFAULT_ACL, acl)
            return "acl"
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
        logger.warning("no ACLs on %s: handing the folder to user %s", folder, user.name)
        os.fchown(fd, user.uid, user.gid)
        return "owner"
    finally:
        os.close(fd)


def revoke_folder(folder: Path) -> None:
    """Remove any ACL from a folder kernels must never be granted (state, environments)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            for name in (ACCESS_ACL, DEFAULT_ACL):
                with contextlib.suppress(OSError):
                    os.removexattr(fd, name)
        finally:
            os.close(fd)


def hand_over(path: Path, user: KernelUser) -> None:
    """Give a server-made, kernel-private item (runtime folder, connection file) to ``user``."""
    os.chown(path, user.uid, user.gid, follow_symlinks=False)
