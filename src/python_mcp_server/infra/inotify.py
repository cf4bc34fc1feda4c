"""Linux inotify through ctypes: watch directories, read their events without blocking.

Only what the new-file tracker needs: one non-blocking inotify descriptor, a watch per
directory, and a parser for the event records. ``Inotify.open()`` raises ``OSError`` where
inotify does not exist (not Linux) or the per-user instance limit is reached; callers then
fall back to scanning.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000

IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


@dataclass(frozen=True)
class InotifyEvent:
    """One event: the watch it came from, what happened, and the entry's name in it."""

    wd: int
    mask: int
    name: str

    @property
    def is_dir(self) -> bool:
        return bool(self.mask & IN_ISDIR)


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, "inotify exists only on Linux")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    for name in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch"):
        if not hasattr(libc, name):
            raise OSError(errno.ENOSYS, f"libc has no {name}")
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def parse_events(buffer: bytes) -> list[InotifyEvent]:
    """Split a read() of the inotify descriptor into events."""
    events = []
    offset = 0
    while offset + _HEADER.size <= len(buffer):
        wd, mask, _cookie, length = _HEADER.unpack_from(buffer, offset)
        offset += _HEADER.size
        raw = buffer[offset : offset + length].split(b"\0", 1)[0]
        offset += length
        events.append(InotifyEvent(wd, mask, os.fsdecode(raw)))
    return events


class Inotify:
    """A non-blocking inotify instance."""

    def __init__(self, libc: Any, fd: int) -> None:
        self._libc = libc
        self.fd = fd

    @classmethod
    def open(cls) -> Inotify:
        libc = _load_libc()
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        return cls(libc, fd)

    def add_watch(self, path: str, mask: int) -> int:
        """Watch a directory (never through a symlink); returns the watch descriptor."""
        wd = self._libc.inotify_add_watch(
            self.fd, os.fsencode(path), mask | IN_ONLYDIR | IN_DONT_FOLLOW
        )
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return int(wd)

    def read(self) -> list[InotifyEvent]:
        """Every event queued now; an empty list when none is."""
        events: list[InotifyEvent] = []
        while True:
            try:
                chunk = os.read(self.fd, 256 * 1024)
            except BlockingIOError:
                return events
            if not chunk:
                return events
            events.extend(parse_events(chunk))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
