"""Detached mounts: a folder (or file) of the server's view, as a descriptor another mount
namespace can attach (Linux 5.12+ mount API, called through ctypes).

``open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`` copies the mount tree at a path into a new,
unattached tree held by a descriptor; ``mount_setattr`` makes it read-only, ``nosuid`` and
``nodev`` before it leaves the server. A forked sandboxed kernel receives such descriptors
and attaches each with ``move_mount`` in its own mount namespace (``isolation_program.py``):
so it gets its own runtime folder, workspace and session package folder without any of
them ever being visible in the template it was forked from. Only a process with
``CAP_SYS_ADMIN`` over the mount namespace the path is in can make them: a root server,
or for a server that is not root its helper in a mount namespace of its own
(``mount_helper.py``).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_OPEN_TREE, _MOUNT_SETATTR = 428, 442  # the same on x86_64 and aarch64
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC = 0x1, os.O_CLOEXEC
_AT_RECURSIVE, _AT_EMPTY_PATH, _AT_FDCWD, _AT_SYMLINK_NOFOLLOW = 0x8000, 0x1000, -100, 0x100
_ATTR_RDONLY, _ATTR_NOSUID, _ATTR_NODEV = 0x1, 0x2, 0x4


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _syscall() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.syscall
    function.restype = ctypes.c_long
    return function


def detach(path: Path, *, read_only: bool) -> int:
    """A descriptor holding a detached copy of the mount tree at ``path`` (its links not
    followed at the last component), ``nosuid`` and ``nodev``, read-only if asked. The
    caller closes it."""
    syscall = _syscall()
    flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE | _AT_SYMLINK_NOFOLLOW
    fd = syscall(_OPEN_TREE, _AT_FDCWD, os.fsencode(path), flags)
    if fd < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"open_tree {path}: {os.strerror(error)}")
    attr = _MountAttr(_ATTR_NOSUID | _ATTR_NODEV | (_ATTR_RDONLY if read_only else 0), 0, 0, 0)
    result = syscall(
        _MOUNT_SETATTR,
        fd,
        b"",
        _AT_EMPTY_PATH | _AT_RECURSIVE,
        ctypes.byref(attr),
        ctypes.sizeof(attr),
    )
    if result < 0:
        error = ctypes.get_errno()
        os.close(fd)
        raise OSError(error, f"mount_setattr {path}: {os.strerror(error)}")
    return int(fd)


def supported(folder: Path) -> bool:
    """Whether this process may make detached mounts (root over the mount API)."""
    try:
        os.close(detach(folder, read_only=True))
    except OSError:
        return False
    return True
