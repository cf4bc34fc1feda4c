"""Files a run leaves in ``outputs/``: stream spills and images, bounded and never via a link.

Every file is created through the workspace resolver (``O_CREAT | O_EXCL | O_NOFOLLOW``
under folders walked without following links), so an ``outputs`` symlink planted by kernel
code makes the write fail; nothing lands outside the workspace. What a run writes is
capped per call (``MCP_MAX_SPILL_BYTES_PER_CALL``) and per session for its life
(``MCP_MAX_SPILL_BYTES_PER_SESSION``); past the cap a spill file keeps its head and its
last ``TAIL_BYTES`` and says in between how much was dropped. A failed write (a full disk,
a planted link) is recorded on the spill, never raised into the kernel's message reader.
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass

from python_mcp_server.core.workspace.dirfd import is_disk_full, os_error, write_all
from python_mcp_server.core.workspace.resolver import Workspace, format_bytes
from python_mcp_server.errors import ErrorCode, ServerError

logger = logging.getLogger(__name__)

OUTPUTS_FOLDER = "outputs"
#: Bytes of a capped spill's end that are still saved, after a note of what was dropped.
TAIL_BYTES = 16 * 1024


@dataclass(frozen=True)
class OutputLimits:
    """How many bytes runs may write under outputs/."""

    per_call_bytes: int
    per_session_bytes: int


class _Usage:
    """Bytes one session's runs wrote under outputs/ so far."""

    def __init__(self) -> None:
        self.used = 0


class SpillBudget:
    """What one call may still write: the smaller of its own and its session's remainder."""

    def __init__(self, limits: OutputLimits, usage: _Usage) -> None:
        self._limits = limits
        self._usage = usage
        self.used = 0
        #: Which cap stopped a write first, in words; None while nothing was refused.
        self.capped_by: str | None = None

    def take(self, wanted: int) -> int:
        """Reserve up to ``wanted`` bytes; returns how many may be written."""
        call_left = self._limits.per_call_bytes - self.used
        session_left = self._limits.per_session_bytes - self._usage.used
        granted = max(0, min(wanted, call_left, session_left))
        if granted < wanted and self.capped_by is None:
            if call_left <= session_left:
                self.capped_by = (
                    f"the {format_bytes(self._limits.per_call_bytes)} per-call cap "
                    "(MCP_MAX_SPILL_BYTES_PER_CALL)"
                )
            else:
                self.capped_by = (
                    f"the session's {format_bytes(self._limits.per_session_bytes)} cap "
                    "(MCP_MAX_SPILL_BYTES_PER_SESSION)"
                )
        self.used += granted
        self._usage.used += granted
        return granted


class OutputFiles:
    """Creates the files of runs under ``outputs/`` and keeps each session's byte count."""

    def __init__(self, workspace: Workspace, limits: OutputLimits) -> None:
        self.workspace = workspace
        self.limits = limits
        self._usage: weakref.WeakKeyDictionary[object, _Usage] = weakref.WeakKeyDictionary()

    def budget(self, owner: object | None) -> SpillBudget:
        """A budget for one call of ``owner`` (a session; None: the call alone)."""
        if owner is None:
            return SpillBudget(self.limits, _Usage())
        usage = self._usage.get(owner)
        if usage is None:
            usage = self._usage[owner] = _Usage()
        return SpillBudget(self.limits, usage)

    @staticmethod
    def relative(name: str) -> str:
        return f"{OUTPUTS_FOLDER}/{name}"

    def create(self, name: str) -> int:
        """A new file ``outputs/<name>`` open for writing; a ServerError when refused."""
        return self.workspace.create_file((OUTPUTS_FOLDER, name), repr(self.relative(name)))

    def save(self, name: str, data: bytes, budget: SpillBudget) -> str:
        """Write a whole file (an image); returns its workspace path. Raises ServerError:
        FILE_TOO_LARGE past the budget (nothing is written), DISK_FULL, a refusal."""
        shown = repr(self.relative(name))
        if budget.take(len(data)) < len(data):
            raise OutputCapError(f"{shown} was not saved: it would pass {budget.capped_by}")
        fd = self.create(name)
        try:
            write_all(fd, data)
        except OSError as exc:
            _remove(self.workspace, name)
            raise os_error(exc, shown) from None
        finally:
            os.close(fd)
        return self.relative(name)


class OutputCapError(ServerError):
    """A file was not saved because the output byte cap was reached (the run's message
    says so; it never reaches a client as a tool error)."""

    code = ErrorCode.FILE_TOO_LARGE


def _remove(workspace: Workspace, name: str) -> None:
    try:
        parent = workspace.open_dir((OUTPUTS_FOLDER,), repr(name))
    except ServerError:
        return
    try:
        os.unlink(name, dir_fd=parent)
    except OSError:
        pass
    finally:
        os.close(parent)


class SpillFile:
    """One stream's file in outputs/: everything while the budget lasts, then only the tail.

    Created on the first write. A write that fails stops the spill and is kept in ``error``
    (``DISK_FULL`` for a full disk); the stream's in-memory head is unaffected.
    """

    def __init__(self, files: OutputFiles, name: str, budget: SpillBudget) -> None:
        self._files = files
        self._name = name
        self._budget = budget
        self._fd: int | None = None
        self._tail = bytearray()
        self.written = 0
        self.dropped = 0
        self.error: ServerError | None = None
        self.path: str | None = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            self.dropped += len(data)
            return
        if self._fd is None and self.path is None:
            self._open()
            if self.error is not None:
                self.dropped += len(data)
                return
        granted = self._budget.take(len(data)) if not self.dropped else 0
        if granted:
            self._write(data[:granted])
            self.written += granted
        rest = data[granted:]
        if rest:
            self.dropped += len(rest)
            self._tail += rest
            del self._tail[:-TAIL_BYTES]

    def _open(self) -> None:
        try:
            self._fd = self._files.create(self._name)
            self.path = self._files.relative(self._name)
        except ServerError as exc:
            self._fail(exc)

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            return
        try:
            write_all(self._fd, data)
        except OSError as exc:
            self._fail(os_error(exc, repr(self._files.relative(self._name))))

    def _fail(self, error: ServerError) -> None:
        if is_disk_full(error):
            logger.warning("output file %s not saved: %s", self._name, error.message)
        else:
            logger.info("output file %s not saved: %s", self._name, error.message)
        self.error = error
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def capped(self) -> bool:
        """Whether bytes were dropped at the cap (not for an error)."""
        return self.dropped > 0 and self.error is None

    def note(self) -> str | None:
        """What the result should say about this file, if anything."""
        shown = self._files.relative(self._name)
        if self.error is not None:
            return f"{shown} is incomplete: {self.error.message}"
        if self.capped:
            return (
                f"{shown} was cut at {budget_reason(self._budget)}: it keeps the first "
                f"{format_bytes(self.written)} and the last {format_bytes(len(self._tail))}; "
                f"{format_bytes(self.dropped - len(self._tail))} in between were dropped"
            )
        return None

    def close(self) -> str | None:
        """Finish the file (the dropped-bytes note and the tail); returns its path."""
        if self._fd is None:
            return self.path
        if self.dropped:
            gap = self.dropped - len(self._tail)
            self._write(
                f"\n[... {gap} bytes dropped: {budget_reason(self._budget)} ...]\n".encode()
            )
            self._write(bytes(self._tail))
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return self.path


def budget_reason(budget: SpillBudget) -> str:
    return budget.capped_by or "the output cap"
