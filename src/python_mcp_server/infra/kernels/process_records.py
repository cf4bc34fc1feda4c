"""Pid records of the kernels a server started, so a later server can end orphans.

Each launched local kernel gets ``<state>/kernels/<pid>.json`` naming the kernel and the
server that owns it (pid and process start time, so a recycled pid is never mistaken).
At start, a server ends every recorded kernel whose owner is gone: the kernels a killed
(SIGKILL) server could not shut down.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import threading
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

    def reserve(self, name: str, marker: str) -> None:
        """Note a kernel about to start, before its pid exists.

        A server killed between starting a kernel and recording its pid would otherwise
        leave an orphan nobody knows of; ``marker`` (its connection file, which appears in
        its command line) lets the next server find it.
        """
        payload = {"marker": marker, "owner": asdict(self._owner)}
        (self._folder / f"{name}.pending").write_text(json.dumps(payload))

    def add(self, pid: int, *, name: str | None = None) -> None:
        """Record a started kernel's pid (replacing its reservation)."""
        kernel = ProcessIdentity.of(pid)
        if kernel is not None:
            record = KernelRecord(kernel=kernel, owner=self._owner)
            (self._folder / f"{pid}.json").write_text(json.dumps(asdict(record)))
        if name is not None:
            self.release(name)

    def release(self, name: str) -> None:
        """Drop a reservation (the launch failed, or its pid is recorded)."""
        with contextlib.suppress(FileNotFoundError):
            (self._folder / f"{name}.pending").unlink()

    def remove(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._folder / f"{pid}.json").unlink()

    def _orphaned(self, owner: ProcessIdentity) -> bool:
        """Whether a record's server is gone (or is an earlier life of this one)."""
        return owner == self._owner or not owner.is_running()

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
            if not self._orphaned(record.owner):
                continue  # another live server owns it
            if record.kernel.is_running():
                kill_process_tree(record.kernel.pid)
                ended += 1
                logger.warning("ended orphaned kernel pid %d", record.kernel.pid)
            path.unlink(missing_ok=True)
        markers = self._orphaned_reservations()
        if markers:
            ended += _kill_by_marker(markers)
        return ended

    def _orphaned_reservations(self) -> set[str]:
        markers = set()
        for path in self._folder.glob("*.pending"):
            try:
                raw = json.loads(path.read_text())
                owner = ProcessIdentity(**raw["owner"])
                marker = str(raw["marker"])
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if self._orphaned(owner):
                markers.add(marker)
                path.unlink(missing_ok=True)
        return markers


def _kill_by_marker(markers: set[str]) -> int:
    """End every process whose command line names one of the markers."""
    ended = 0
    for proc in psutil.process_iter(["cmdline"]):
        command = " ".join(proc.info.get("cmdline") or ())
        if any(marker in command for marker in markers):
            kill_process_tree(proc.pid)
            ended += 1
            logger.warning("ended orphaned kernel pid %d (started, never recorded)", proc.pid)
    return ended


def _children_pids(pid: int) -> list[int]:
    """The children of ``pid``, from each of its threads' ``children`` file in /proc."""
    found: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        path = f"/proc/{pid}/task/{tid}/children"
        # FileNotFoundError, ProcessLookupError: the thread ended meanwhile
        with contextlib.suppress(FileNotFoundError, ProcessLookupError), open(path) as listing:
            found += [int(child) for child in listing.read().split()]
    return found


@functools.cache
def _proc_children_readable() -> bool:
    """Whether this kernel lists a thread's children in /proc (CONFIG_PROC_CHILDREN)."""
    return os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children")


def descendants(root: psutil.Process) -> list[psutil.Process]:
    """Every descendant of ``root``. Walks the tree's own /proc entries, so the cost grows
    with the tree, not with the machine (psutil's ``children(recursive=True)`` reads every
    process on the machine: about 10 ms a walk on a busy host, on the event loop)."""
    if not _proc_children_readable():
        return list(root.children(recursive=True))
    found: list[psutil.Process] = []
    pending = [root.pid]
    while pending:
        try:
            children = _children_pids(pending.pop())
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
        except PermissionError:
            return list(root.children(recursive=True))
        for pid in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                found.append(psutil.Process(pid))
                pending.append(pid)
    return found


def kill_process_tree(pid: int) -> None:
    """SIGKILL a process, its process group (if it leads one) and all its descendants.

    The tree is first frozen: every member is stopped (SIGSTOP) until a walk finds no new
    one, so nothing can fork, or leave the tree, between the walk and the kill. Kernels
    are child subreapers, so orphans they made (double-forked daemons) are in the tree.
    """
    try:
        root = psutil.Process(pid)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return
    frozen: dict[int, psutil.Process] = {}
    for _ in range(50):  # bounded: each walk stops what the last one found
        try:
            tree = [root, *descendants(root)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            break
        fresh = [p for p in tree if p.pid not in frozen]
        if not fresh:
            break
        for proc in fresh:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                proc.send_signal(signal.SIGSTOP)
            frozen[proc.pid] = proc
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    for proc in [root, *frozen.values()]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()
