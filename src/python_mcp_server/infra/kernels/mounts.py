"""The bubblewrap mount set of a sandboxed process, from server-side values only.

A sandbox sees the whole system read-only, with folders laid over it in an order where
parents come before children:

- *hidden*: replaced by an empty, size-capped tmpfs (``/tmp``, ``/run``, the user's home,
  the state folder, the environments folder);
- *readable*: bound read-only, even inside a hidden folder (the server's own Python, the
  environment a kernel runs, configured local package folders);
- *writable*: bound read-write (the workspace, a kernel's runtime folder, its session's
  package folder; for an install, the folder being installed into).

When the sandboxed program runs as the unprivileged kernel user (a root server), host
folders that user cannot pass on the way to what it must reach (``/root`` holding the
Python installation) are hidden too, and the folders bwrap makes on a tmpfs to reach a
mount point are made explicitly with mode 0755 (bwrap would copy the host's modes).
Without a memory cgroup counting them, the tmpfs folders are sized inside the memory
limit (``scratch_sizes``).

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

HIDE, DIR, READ_ONLY, WRITABLE = 0, 1, 2, 3
#: Without a memory cgroup, the private tmpfs folders together get this share of the
#: memory limit (/tmp half of it, /dev/shm a quarter, the hidden folders the rest).
SCRATCH_SHARE = 4


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
    """Whether ``path`` is one of ``folders`` or inside one (by path components, as
    ``folder in path.parents`` would say, without walking ``parents`` on every call)."""
    parts = path.parts
    return any(parts[: len(folder.parts)] == folder.parts for folder in folders)


def scratch_sizes(tmp_size_mb: int, counted: bool, hidden: int) -> tuple[int, int, int]:
    """Bytes of /tmp, /dev/shm and each hidden folder's tmpfs."""
    if counted:  # a memory cgroup charges tmpfs pages: the cgroup bounds the sum
        size = tmp_size_mb * MIB
        return size, size, min(tmp_size_mb, HIDDEN_SIZE_MB) * MIB
    budget = tmp_size_mb * MIB // SCRATCH_SHARE
    return budget // 2, budget // 4, max(MIB, budget // 4 // max(hidden, 1))


def closed_parents(paths: Iterable[Path], hidden: Sequence[Path]) -> list[Path]:
    """Host folders the kernel user cannot pass (no ``o+x``, such as /root) on the way to
    what it must reach: hidden like the home, so what it needs is exposed on a tmpfs
    (nothing else in them was reachable to that user anyway)."""
    found: dict[Path, None] = {}
    for path in paths:
        for parent in reversed(path.parents[:-1]):  # from the top, "/" left out
            if under(parent, [*hidden, *found]):
                break
            try:
                passable = os.stat(parent).st_mode & 0o001
            except OSError:
                break
            if not passable:
                found[parent] = None
                break
    return list(found)


def parents_on_tmpfs(mounts: Sequence[Mount]) -> list[Mount]:
    """Folders bwrap would make on a hidden folder's tmpfs to reach a mount point."""
    at = {mount.path: mount.kind for mount in mounts}
    found: dict[Path, None] = {}
    for mount in mounts:
        if mount.kind == HIDE:
            continue
        between: list[Path] = []
        for parent in mount.path.parents:
            if parent in at:
                if at[parent] == HIDE:
                    found.update(dict.fromkeys(between))
                break
            between.append(parent)
    return [Mount(path, DIR) for path in found]


def plan_mounts(
    *,
    hidden: Sequence[Path],
    readable: Iterable[Path],
    writable: Sequence[Path],
    unprivileged: bool = False,
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
    read = sorted({resolved(p) for p in readable})
    if unprivileged:  # the kernel user must pass every folder on the way
        hide += closed_parents([*write, *read], hide)
    exposed = [p for p in RUN_REEXPOSED if p.is_dir()]
    exposed += [root for root in read if root.is_dir() and under(root, [*hide, *write])]
    mounts = [Mount(p, HIDE) for p in hide]
    mounts += [Mount(p, READ_ONLY) for p in exposed]
    mounts += [Mount(p, WRITABLE) for p in dict.fromkeys(write)]
    return sorted([*mounts, *parents_on_tmpfs(mounts)], key=lambda m: m.order)


def mount_args(
    mounts: Sequence[Mount],
    tmp_size_mb: int,
    *,
    counted: bool = False,
    tmp_perms: Sequence[str] = (),
) -> list[str]:
    """bwrap options for the system, /dev, /proc, /dev/shm and ``mounts``, in order.

    ``counted``: a memory cgroup counts the tmpfs folders (each may take the whole limit);
    ``tmp_perms``: options before each tmpfs (``--perms 1777`` for the kernel user)."""
    hidden = sum(1 for mount in mounts if mount.kind == HIDE) - 1  # /tmp apart
    tmp, shm, small = (str(n) for n in scratch_sizes(tmp_size_mb, counted, hidden))
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    args += [*tmp_perms, "--size", shm, "--tmpfs", "/dev/shm"]
    for mount in mounts:
        if mount.kind == HIDE:
            size = tmp if mount.path == Path("/tmp") else small
            args += [*tmp_perms, "--size", size, "--tmpfs", str(mount.path)]
        elif mount.kind == DIR:
            args += ["--perms", "0755", "--dir", str(mount.path)]
        elif mount.kind == READ_ONLY:
            args += ["--ro-bind", str(mount.path), str(mount.path)]
        else:
            args += ["--bind", str(mount.path), str(mount.path)]
    return args
