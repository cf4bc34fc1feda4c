"""Is the disk full? Free space of the workspace and state file systems, and writes that
failed for lack of room.

``DiskWatch`` is what ``health_check`` shows under ``disk``: for each file system the
server writes to, its free and total bytes and whether it is full (less than
``FULL_BELOW_BYTES`` free), plus the number of output and history writes that failed
because the disk was full. ``full`` is true when a file system is full now; the failure
counts say it happened before.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.models.health import DiskHealth, FileSystemSpace

#: A file system with less room than this is reported full (a page of SQLite, a spill).
FULL_BELOW_BYTES = 1024 * 1024


@dataclass
class DiskWatch:
    """Free space of the server's file systems and the writes refused for lack of room."""

    #: name ("workspace", "state") -> a folder on that file system.
    folders: dict[str, Path]
    output_failures: int = 0
    last_failure: str | None = None

    def output_write_failed(self, reason: str) -> None:
        """An execution's output could not be saved because the disk was full."""
        self.output_failures += 1
        self.last_failure = reason

    def spaces(self) -> list[FileSystemSpace]:
        seen: set[int] = set()
        found = []
        for name, folder in self.folders.items():
            try:
                device = os.stat(folder).st_dev
                usage = shutil.disk_usage(folder)
            except OSError:
                continue
            if device in seen:
                continue
            seen.add(device)
            found.append(
                FileSystemSpace(
                    name=name,
                    free_bytes=usage.free,
                    total_bytes=usage.total,
                    full=usage.free < FULL_BELOW_BYTES,
                )
            )
        return found

    def report(self, history_failures: int, history_error: str | None) -> DiskHealth:
        spaces = self.spaces()
        return DiskHealth(
            full=any(space.full for space in spaces),
            file_systems=spaces,
            output_write_failures=self.output_failures,
            history_write_failures=history_failures,
            last_failure=self.last_failure or history_error,
        )
