"""Pid records of the kernels a server started, so a later server can end orphans.

Each launched local kernel gets ``<state>/kernels/<pid>.json`` naming the kernel and the
server that owns it (pid and process start time, so a recycled pid is never mistaken).
At start, a server ends every recorded kernel whose owner is gone: the kernels a killed
(SIGKILL) server could not shut down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessIdentity:
    """A process named by pid and start time: stable against pid reuse."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def is_running(self) -> bool:
        current = ProcessIdentity.of(self.pid)
        return current is not None and abs(current.create_time - self.create_time) < 0.01


@dataclass(frozen=True)
class KernelRecord:
    """One kernel and the server that started it."""

    kernel: ProcessIdentity
    owner: ProcessIdentity


class ProcessRecords:
    """The folder of kernel pid records for one state directory."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._folder.mkdir(parents=True, exist_ok=True)
        owner = ProcessIdentity.of(os.getpid())
        assert owner is not None
        self._owner = owner

    def add(self, pid: int) -> None:
        kernel = ProcessIdentity.of(pid)
        if kernel is None:
            return
        record = KernelRecord(kernel=kernel, owner=self._owner)
        path = self._folder / f"{pid}.json"
        path.write_text(json.dumps(asdict(record)))

    def remove(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._folder / f"{pid}.json").unlink()

    def reap_orphans(self) -> int:
        """End kernels whose owning server is gone. Returns how many were ended."""
        ended = 0
        for path in self._folder.glob("*.json"):
            try:
                raw = json.loads(path.read_text())
                record = KernelRecord(
                    kernel=ProcessIdentity(**raw["kernel"]), owner=ProcessIdentity(**raw["owner"])
                )
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if record.owner != self._owner and record.owner.is_running():
                continue  # another live server owns it
            if record.kernel.is_running():
                kill_process_tree(record.kernel.pid)
                ended += 1
                logger.warning("ended orphaned kernel pid %d", record.kernel.pid)
            path.unlink(missing_ok=True)
        return ended


def kill_process_tree(pid: int) -> None:
    """SIGKILL a process, its process group (if it leads one) and all its descendants."""
    try:
        root = psutil.Process(pid)
        descendants = root.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    for proc in [root, *descendants]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
