"""Per-kernel cgroups: memory (tmpfs included) and process limits, where we may use them.

Each sandboxed kernel gets ``<our cgroup>/python-mcp-server-<pid>-<id>/k<name>`` in every
hierarchy that holds a controller we use, with its limits written before the kernel
starts; the launch command writes itself into each ``cgroup.procs`` and then execs
bubblewrap (see ``confine.py``), so nothing the kernel starts escapes them.

- memory: cgroup v2 ``memory.max`` with ``memory.swap.max = 0`` and ``memory.oom.group``
  (an out-of-memory kill ends the whole sandbox), or cgroup v1 ``memory.limit_in_bytes``
  and ``memory.memsw.limit_in_bytes``. Pages of the sandbox's private ``/tmp`` and
  ``/dev/shm`` are charged to the cgroup, so files there count against the limit.
- processes: ``pids.max`` (v1 or v2). For a root server RLIMIT_NPROC is never enforced
  (the kernel exempts root, even inside a user namespace), so a fork bomb needs this.

A server killed with SIGKILL cannot end its kernels; the next server's ``end_orphans``
kills whatever is left in the kernel cgroups of servers that are gone (the folder names
the server's pid), so nothing a kernel started survives, recorded or not.

cgroup v1 keeps one hierarchy per controller (one folder each); v2 has one folder for
both, with the controllers enabled for the children of our cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "python-mcp-server-"
CONTROLLERS = ("memory", "pids")


@dataclass(frozen=True)
class CgroupLimits:
    """What one kernel's cgroups hold it to; None leaves a limit unset."""

    max_tasks: int | None = None
    memory_bytes: int | None = None


def _cgroup_lines() -> list[str]:
    try:
        return Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []


def _writable(folder: Path) -> bool:
    return (folder / "cgroup.procs").exists() and os.access(folder, os.W_OK)


def find_parents(root: Path = CGROUP_ROOT) -> tuple[dict[str, Path], bool]:
    """Controller -> our writable cgroup folder holding it; and whether that is cgroup v2."""
    lines = [line.split(":", 2) for line in _cgroup_lines() if line.count(":") >= 2]
    found: dict[str, Path] = {}
    for _, controllers, path in lines:  # cgroup v1: one hierarchy per controller
        for name in CONTROLLERS:
            folder = root / name / path.lstrip("/")
            if name in controllers.split(",") and _writable(folder):
                found[name] = folder
    if found:
        return found, False
    for hierarchy, controllers, path in lines:  # cgroup v2: one folder
        if hierarchy == "0" and controllers == "":
            folder = root / path.lstrip("/")
            with contextlib.suppress(OSError):
                enabled = (folder / "cgroup.subtree_control").read_text().split()
                if _writable(folder):
                    return {name: folder for name in CONTROLLERS if name in enabled}, True
    return {}, False


class KernelCgroups:
    """This launcher's per-kernel cgroups (its folders are made at the first kernel)."""

    def __init__(self, parents: dict[str, Path], v2: bool) -> None:
        self.parents = dict(parents)
        self.v2 = v2
        tag = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.bases = {parent: parent / tag for parent in set(self.parents.values())}
        self._made = False

    @classmethod
    def find(cls, root: Path = CGROUP_ROOT) -> KernelCgroups | None:
        """None when no controller we use can be written (not root, a v2 leaf)."""
        parents, v2 = find_parents(root)
        return cls(parents, v2) if parents else None

    @property
    def memory(self) -> bool:
        """Whether kernels' memory (tmpfs included) is bounded by a cgroup."""
        return "memory" in self.parents

    @property
    def pids(self) -> bool:
        return "pids" in self.parents

    def _make_bases(self) -> None:
        for parent, base in self.bases.items():
            remove_stale(parent)
            base.mkdir(exist_ok=True)
            if self.v2:
                wanted = " ".join(f"+{n}" for n, p in self.parents.items() if p == parent)
                (base / "cgroup.subtree_control").write_text(wanted)
        self._made = True

    def for_kernel(self, name: str, limits: CgroupLimits) -> list[Path]:
        """New cgroups for one kernel with its limits written; the folders to join."""
        if not self._made:
            self._make_bases()
        folders: list[Path] = []
        for controller, parent in self.parents.items():
            folder = self.bases[parent] / name
            if folder not in folders:
                folder.mkdir(exist_ok=True)
                folders.append(folder)
            if controller == "pids" and limits.max_tasks is not None:
                (folder / "pids.max").write_text(str(limits.max_tasks))
            if controller == "memory" and limits.memory_bytes is not None:
                _limit_memory(folder, limits.memory_bytes, self.v2)
        return folders

    def oom_kills(self, folders: list[Path]) -> int:
        """How many processes the out-of-memory killer ended in these cgroups (v2
        ``memory.events``, v1 ``memory.oom_control``: their ``oom_kill`` line)."""
        memory = self.parents.get("memory")
        name = "memory.events" if self.v2 else "memory.oom_control"
        for folder in folders:
            if memory is None or folder.parent.parent != memory:
                continue
            with contextlib.suppress(OSError, ValueError):
                for line in (folder / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    @staticmethod
    def remove(folder: Path, attempts: int = 50) -> None:
        """Remove a kernel's cgroup once its last process has been reaped."""
        for _ in range(attempts):
            try:
                folder.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)

    def end_orphans(self) -> int:
        """End the processes of gone servers' kernel cgroups (see ``end_stale``)."""
        return end_stale(sorted(set(self.parents.values())))

    def close(self) -> None:
        if not self._made:
            return
        for base in self.bases.values():
            for child in base.glob("k*"):
                self.remove(child, attempts=5)
            with contextlib.suppress(OSError):
                base.rmdir()


def _limit_memory(folder: Path, limit: int, v2: bool) -> None:
    if v2:
        (folder / "memory.max").write_text(str(limit))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            if (folder / name).exists():
                (folder / name).write_text(value)
        return
    (folder / "memory.limit_in_bytes").write_text(str(limit))
    swap = folder / "memory.memsw.limit_in_bytes"  # memory + swap: no swap beyond the limit
    if swap.exists():
        swap.write_text(str(limit))


def _stale(parent: Path) -> list[Path]:
    """The cgroup folders of servers that are gone."""
    stale = []
    for folder in parent.glob(f"{PREFIX}*"):
        pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
        if not (pid.isdigit() and psutil.pid_exists(int(pid))):
            stale.append(folder)
    return stale


def _members(folder: Path) -> set[int]:
    with contextlib.suppress(OSError, ValueError):
        return {int(line) for line in (folder / "cgroup.procs").read_text().split()}
    return set()


def _kill_members(folder: Path, attempts: int = 50) -> int:
    """SIGKILL every process in a cgroup (v2 ``cgroup.kill`` where there is one), again
    until none is left (one forking meanwhile is caught by the next round)."""
    ended: set[int] = set()
    for _ in range(attempts):
        members = _members(folder)
        if not members:
            break
        ended |= members
        kill_file = folder / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    return len(ended)


def end_stale(parents: list[Path]) -> int:
    """End every process left in the kernel cgroups of servers that are gone (a killed
    server's kernels, whatever they became: forwarders, forks, daemons) and remove the
    folders. Returns how many processes were ended."""
    ended = 0
    for parent in parents:
        for folder in _stale(parent):
            for child in folder.glob("k*"):
                ended += _kill_members(child)
                KernelCgroups.remove(child)
            with contextlib.suppress(OSError):
                folder.rmdir()
    return ended


def remove_stale(parent: Path) -> None:
    """Remove the empty cgroup folders of servers that are gone."""
    for folder in _stale(parent):
        for child in folder.glob("k*"):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()
