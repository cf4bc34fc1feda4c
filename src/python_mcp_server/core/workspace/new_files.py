"""new_files: which workspace files an execution created or changed, without walking the tree.

On Linux the tracker keeps an inotify watch on every folder of the workspace (set up once,
then extended as folders appear) and journals the files named by create, write, close-write
and move-in events. An execution takes a ``Mark`` before it runs; afterwards the journal
entries newer than the mark are its new files. The cost per call is reading the events that
happened, independent of how many files the workspace holds.

Where inotify is unavailable (not Linux, instance or watch limits reached), or events were
lost (the kernel's queue overflowed, or the journal passed its cap), the answer comes from
one scan of the tree for files modified since the mark instead: correct, but it costs a walk.

Limits (documented in docs/workspace.md): executions that overlap in time (other sessions,
or calls queued behind a busy session) may see each other's files; files written by
processes still running after the call are reported by a later call; the private state
folder and symlinked folders are not watched.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import stat
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any

from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.core.workspace.atomic_write import TEMP_PREFIX
from python_mcp_server.core.workspace.resolver import Workspace
from python_mcp_server.infra import inotify

logger = logging.getLogger(__name__)

MAX_NEW_FILES = 1000
JOURNAL_CAP = 100_000
#: Filesystem timestamps come from a coarse clock; the scan looks this far before the mark.
SCAN_SLACK = 0.05
_FILE_EVENTS = inotify.IN_CREATE | inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_MODIFY
_WATCH_MASK = _FILE_EVENTS
_NOTE = "new_files_mark"


class Mark:
    """A point in the event journal (and in time, for the scan fallback)."""

    def __init__(self, seq: int, wall: float) -> None:
        self.seq = seq
        self.wall = wall


Parts = tuple[str, ...]


class NewFilesTracker:
    """Journals changed paths from inotify; answers "what changed since this mark"."""

    def __init__(self, workspace: Workspace, *, use_inotify: bool = True) -> None:
        self._workspace = workspace
        self._root = str(workspace.root)
        self._use_inotify = use_inotify
        self._lock = threading.Lock()
        self._notify: inotify.Inotify | None = None
        #: Polls the inotify descriptor: whether events wait to be read.
        self._poll: select.poll | None = None
        self._watches: dict[int, Parts] = {}
        self._journal: OrderedDict[Parts, int] = OrderedDict()
        self._seq = 0
        self._lost_seq = -1  # events at or before this seq may be missing
        self._marks: weakref.WeakSet[Mark] = weakref.WeakSet()
        self._started = False

    @property
    def mode(self) -> str:
        """``inotify`` or ``scan``."""
        return "inotify" if self._notify is not None else "scan"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._started:
            return
        self._started = True
        if not self._use_inotify:
            return
        try:
            self._notify = inotify.Inotify.open()
            self._poll = select.poll()
            self._poll.register(self._notify.fd, select.POLLIN)
            self._watch_tree(())
        except OSError as exc:
            logger.warning("new_files falls back to scanning the workspace: %s", exc.strerror)
            self._close_notify()

    def close(self) -> None:
        with self._lock:
            self._close_notify()

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
        self._notify = None
        self._poll = None
        self._watches.clear()

    # --- the two questions -----------------------------------------------------------------
    def mark(self) -> Mark:
        """Remember "now"; keep the mark (it is weakly held) until ``changed_since``."""
        with self._lock:
            self._start_locked()
            self._drain()
            if not self._marks:
                self._journal.clear()
            mark = Mark(self._seq, time.time())
            self._marks.add(mark)
            return mark

    def changed_since(self, mark: Mark) -> list[str]:
        """Workspace-relative paths of files created or changed after ``mark``, sorted."""
        with self._lock:
            self._drain()
            self._marks.discard(mark)
            if self._notify is None or mark.seq < self._lost_seq:
                return self._scan_since(mark.wall - SCAN_SLACK)
            found = [parts for parts, seq in self._journal.items() if seq > mark.seq]
        existing = [parts for parts in found if self._is_reportable(parts)]
        return sorted("/".join(parts) for parts in existing)[:MAX_NEW_FILES]

    # --- the same questions, answered at once when nothing happened -----------------------
    def quick_mark(self) -> Mark | None:
        """``mark()`` when it costs next to nothing (watching, no event waiting to be read,
        no other thread inside): safe on the event loop. None: call ``mark`` in a thread."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if not self._started or self._events_waiting():
                return None
            if not self._marks:
                self._journal.clear()
            mark = Mark(self._seq, time.time())
            self._marks.add(mark)
            return mark
        finally:
            self._lock.release()

    def quick_unchanged(self, mark: Mark) -> bool:
        """True when nothing changed since ``mark`` as far as can be told at once (no event
        journaled or waiting since): ``changed_since(mark)`` would be empty, and the mark is
        released. False: ask ``changed_since`` (in a thread)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._seq != mark.seq or mark.seq < self._lost_seq or self._events_waiting():
                return False
            self._marks.discard(mark)
            return True
        finally:
            self._lock.release()

    def _events_waiting(self) -> bool:
        """Whether inotify has events to read, or cannot say (not watching: scanning)."""
        if self._notify is None or self._poll is None:
            return True
        try:
            return bool(self._poll.poll(0))
        except OSError:
            return True

    # --- inotify ---------------------------------------------------------------------------
    def _drain(self) -> None:
        if self._notify is None:
            return
        try:
            events = self._notify.read()
        except OSError as exc:
            logger.warning("inotify read failed (%s); scanning instead", exc.strerror)
            self._close_notify()
            return
        for event in events:
            self._handle(event)

    def _handle(self, event: inotify.InotifyEvent) -> None:
        if event.mask & inotify.IN_Q_OVERFLOW:
            self._lost_seq = self._seq = self._seq + 1
            self._watch_tree(())  # folders created during the overflow need watches
            return
        if event.mask & inotify.IN_IGNORED:
            self._watches.pop(event.wd, None)
            return
        folder = self._watches.get(event.wd)
        if folder is None or not event.name:
            return
        parts = (*folder, event.name)
        if event.is_dir:
            if event.mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO):
                self._watch_tree(parts, record=True)
            return
        if event.mask & _FILE_EVENTS:
            self._record(parts)

    def _record(self, parts: Parts) -> None:
        self._seq += 1
        self._journal[parts] = self._seq
        self._journal.move_to_end(parts)
        if len(self._journal) > JOURNAL_CAP:
            _, dropped = self._journal.popitem(last=False)
            self._lost_seq = max(self._lost_seq, dropped)

    def _watch_tree(self, parts: Parts, *, record: bool = False) -> None:
        """Watch a folder and every folder below it; with ``record``, journal their files
        (they may have been written before the watch existed)."""
        if self._notify is None or self._workspace.is_private(parts):
            return
        path = os.path.join(self._root, *parts)
        try:
            wd = self._notify.add_watch(path, _WATCH_MASK)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                logger.warning("inotify watch limit reached; new_files will scan instead")
                self._close_notify()
            return
        self._watches[wd] = parts
        try:
            with os.scandir(path) as entries:
                children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        except OSError:
            return
        for name, is_dir in children:
            if is_dir:
                self._watch_tree((*parts, name), record=record)
            elif record:
                self._record((*parts, name))

    # --- filtering and the fallback --------------------------------------------------------
    def _is_reportable(self, parts: Parts) -> bool:
        if self._workspace.is_private(parts) or parts[-1].startswith(TEMP_PREFIX):
            return False
        try:
            st = os.lstat(os.path.join(self._root, *parts))
        except OSError:
            return False
        return not stat.S_ISDIR(st.st_mode)

    def _scan_since(self, since: float) -> list[str]:
        found: list[str] = []
        for folder, dirs, files in os.walk(self._root):
            relative = os.path.relpath(folder, self._root)
            base: Parts = () if relative == "." else tuple(relative.split(os.sep))
            dirs[:] = [d for d in dirs if not self._workspace.is_private((*base, d))]
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    continue
                try:
                    st = os.lstat(os.path.join(folder, name))
                except OSError:
                    continue
                if st.st_mtime >= since or st.st_ctime >= since:
                    found.append("/".join((*base, name)))
        return sorted(found)[:MAX_NEW_FILES]


class NewFilesHook:
    """ExecutionHook that fills ``ExecutionResult.new_files``."""

    def __init__(self, tracker: NewFilesTracker) -> None:
        self.tracker = tracker

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        # Usually nothing happened since the last call: no thread hop then.
        mark = self.tracker.quick_mark()
        if mark is None:
            mark = await asyncio.to_thread(self.tracker.mark)
        request.notes[_NOTE] = mark

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        mark: Any = request.notes.pop(_NOTE, None)
        if isinstance(mark, Mark):
            if self.tracker.quick_unchanged(mark):
                outcome.result.new_files = []
                return
            outcome.result.new_files = await asyncio.to_thread(self.tracker.changed_since, mark)
