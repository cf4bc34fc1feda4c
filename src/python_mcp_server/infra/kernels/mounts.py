"""The bubblewrap mount set of a sandboxed process, from server-side values only.

A sandbox sees the whole system read-only, with folders laid over it in an order where
parents come before children:

- *hidden*: replaced by an empty, size-capped tmpfs (``/tmp``, ``/run``, the user's home,
  the state folder, the environments folder);
- *readable*: bound read-only, even inside a hidden folder (the server's own Python, the
  environment a kernel runs, configured local package folders);
- *writable*: bound read-write (the workspace, a kernel's runtime folder, its session's
  package folder; for an install, the folder being installed into).

Every path comes from the caller: the settings, or folders the server created and
recorded. Nothing here reads a file a kernel could have written (no ``pyvenv.cfg``) or
follows an interpreter's symlinks to decide what to mount.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Folders under /run a sandboxed program may still need (DNS through systemd-resolved).
RUN_REEXPOSED = (Path("/run/systemd/resolve"),)
#: Size cap of the empty folders laid over hidden ones (home, state, /run), MiB: tmpfs
#: lives in RAM, so what a sandboxed program writes there must stay small.
HIDDEN_SIZE_MB = 128
MIB = 1024 * 1024

HIDE, READ_ONLY, WRITABLE = 0, 1, 2


@dataclass(frozen=True)
class Mount:
    """One folder laid over the read-only system."""

    path: Path
    kind: int

    @property
    def order(self) -> tuple[int, int]:
        # Parents before children; at one depth, hide first and expose after.
        return (len(self.path.parts), self.kind)


def resolved(path: Path) -> Path:
    """A server-configured path with its links resolved (never a kernel-written one)."""
    return Path(os.path.realpath(path))


def under(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def plan_mounts(
    *,
    hidden: Sequence[Path],
    readable: Iterable[Path],
    writable: Sequence[Path],
) -> list[Mount]:
    """The ordered mount set: ``/tmp`` and ``/run`` always hidden, the rest as given.

    A readable folder is bound read-only where it would otherwise be hidden or writable
    (an environment inside the workspace stays read-only); elsewhere the system's
    read-only view already shows it.
    """
    hide = [Path("/tmp"), Path("/run")]
    hide += [resolved(p) for p in hidden if p.is_dir()]
    hide = [p for p in dict.fromkeys(hide) if p != Path("/")]
    write = [resolved(p) for p in writable if p.is_dir()]
    exposed = [p for p in RUN_REEXPOSED if p.is_dir()]
    exposed += [
        root
        for root in sorted({resolved(p) for p in readable})
        if root.is_dir() and under(root, [*hide, *write])
    ]
    mounts = [Mount(p, HIDE) for p in hide]
    mounts += [Mount(p, READ_ONLY) for p in exposed]
    mounts += [Mount(p, WRITABLE) for p in dict.fromkeys(write)]
    return sorted(mounts, key=lambda m: m.order)


def mount_args(mounts: Sequence[Mount], tmp_size_mb: int) -> list[str]:
    """bwrap options for the system, /dev, /proc, /dev/shm and ``mounts``, in order."""
    scratch = str(tmp_size_mb * MIB)
    small = str(min(tmp_size_mb, HIDDEN_SIZE_MB) * MIB)
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    args += ["--size", scratch, "--tmpfs", "/dev/shm"]
    for mount in mounts:
        if mount.kind == HIDE:
            size = scratch if mount.path == Path("/tmp") else small
            args += ["--size", size, "--tmpfs", str(mount.path)]
        elif mount.kind == READ_ONLY:
            args += ["--ro-bind", str(mount.path), str(mount.path)]
        else:
            args += ["--bind", str(mount.path), str(mount.path)]
    return args
