"""Per-kernel process limits through the cgroup ``pids`` controller, where we may use it.

For a server running as root, RLIMIT_NPROC is never enforced (the kernel exempts the
root user, even inside a user namespace), so a fork bomb needs a cgroup: each sandboxed
kernel gets ``<our cgroup>/python-mcp-server-<pid>-<id>/k<name>`` with ``pids.max`` set, and
joins it before it can start anything (the launch command writes itself into
``cgroup.procs`` and then execs bwrap). Works with cgroup v1's pids hierarchy, and with
cgroup v2 when the pids controller is enabled for our cgroup's children.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "python-mcp-server-"


def _own_pids_cgroup(root: Path = CGROUP_ROOT) -> Path | None:
    """The folder of this process's cgroup that can hold child cgroups with pids.max."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):  # cgroup v1
            folder = root / "pids" / path.lstrip("/")
            return folder if (folder / "cgroup.procs").exists() else None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":  # cgroup v2
            folder = root / path.lstrip("/")
            control = folder / "cgroup.subtree_control"
            with contextlib.suppress(OSError):
                if "pids" in control.read_text().split():
                    return folder
    return None


class PidsCgroups:
    """This launcher's folder of per-kernel pids cgroups (made at the first kernel)."""

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.base = parent / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._made = False

    @classmethod
    def find(cls, root: Path = CGROUP_ROOT) -> PidsCgroups | None:
        """None when there is no pids controller we may write to (not root, cgroup v2 leaf)."""
        parent = _own_pids_cgroup(root)
        if parent is None or not os.access(parent, os.W_OK):
            return None
        return cls(parent)

    @staticmethod
    def remove_stale(parent: Path) -> None:
        """Remove the empty cgroup folders of servers that are gone."""
        for folder in parent.glob(f"{PREFIX}*"):
            pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
            if pid.isdigit() and psutil.pid_exists(int(pid)):
                continue
            for child in folder.glob("k*"):
                with contextlib.suppress(OSError):
                    child.rmdir()
            with contextlib.suppress(OSError):
                folder.rmdir()

    def for_kernel(self, name: str, max_tasks: int) -> Path:
        """A new cgroup for one kernel, limited to ``max_tasks`` processes and threads."""
        if not self._made:
            self.remove_stale(self.parent)
            self.base.mkdir(exist_ok=True)
            self._made = True
        folder = self.base / name
        folder.mkdir(exist_ok=True)
        (folder / "pids.max").write_text(str(max_tasks))
        return folder

    @staticmethod
    def join_command(folder: Path) -> list[str]:
        """Argv prefix: the process writes itself into the cgroup, then execs the rest."""
        return ["/bin/sh", "-c", 'echo 0 > "$0" && exec "$@"', str(folder / "cgroup.procs")]

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

    def close(self) -> None:
        if not self._made:
            return
        for child in self.base.glob("k*"):
            self.remove(child, attempts=5)
        with contextlib.suppress(OSError):
            self.base.rmdir()
