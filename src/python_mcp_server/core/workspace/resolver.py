"""The one path resolver of the workspace: every file tool, route and resource goes through it.

A user path becomes a ``ResolvedPath`` (its real location as components under the workspace
root) or a refusal with a stable code:

- ``PATH_OUTSIDE_WORKSPACE``: ``..`` escapes, absolute paths outside, symlinks (to files or
  folders) that lead outside, files with more than one hard link (another link may be
  outside: nothing cheap proves otherwise), the private state folder;
- ``INVALID_INPUT``: empty paths, NUL bytes, device files, FIFOs and sockets, folders where a
  file is needed;
- ``FILE_NOT_FOUND``, ``FILE_TOO_LARGE`` (``MCP_MAX_FILE_BYTES``), ``FILE_EXISTS``.

Resolution is done twice on purpose. ``resolve`` follows symlinks (``realpath``) and checks
where they lead; ``open_dir`` then walks the *real* components from a descriptor of the root
with ``O_NOFOLLOW`` (``dirfd.DirectoryRoot``, the primitive every server-side read and write
goes through), files are created with ``O_EXCL | O_NOFOLLOW`` and opened relative to that
descriptor and checked again with ``fstat``. Code in a kernel that swaps a folder for a
symlink between the two steps gets a refusal, never a file outside. Messages show
workspace-relative paths or the caller's own input, never the server's absolute paths.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.core.workspace.dirfd import READ_FLAGS, DirectoryRoot, os_error
from python_mcp_server.core.workspace.file_types import entry_type
from python_mcp_server.errors import (
    FileTooLargeError,
    InvalidInputError,
    PathOutsideWorkspaceError,
)

__all__ = ["MAX_PATH_CHARS", "ResolvedPath", "Workspace", "WorkspaceConfig", "os_error"]

MAX_PATH_CHARS = 4096


@dataclass(frozen=True)
class WorkspaceConfig:
    """Where the workspace is, where the private state is, and the file size cap."""

    root: Path
    state_dir: Path
    max_file_bytes: int


@dataclass(frozen=True)
class ResolvedPath:
    """A location inside the workspace: its real components under the root."""

    parts: tuple[str, ...]
    #: How to name it in messages: the caller's input, shortened.
    shown: str

    @property
    def relative(self) -> str:
        """Workspace-relative POSIX path; ``.`` for the root."""
        return "/".join(self.parts) or "."

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else "."

    @property
    def parent_parts(self) -> tuple[str, ...]:
        return self.parts[:-1]

    @property
    def is_root(self) -> bool:
        return not self.parts


def format_bytes(size: float) -> str:
    """``52428800`` -> ``50.0 MB``."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - loop always returns


def _shown(path: str) -> str:
    text = path if len(path) <= 120 else path[:117] + "..."
    return repr(text)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class Workspace:
    """Resolves and opens paths inside one workspace folder; refuses everything else."""

    def __init__(self, config: WorkspaceConfig) -> None:
        self.config = config
        self.directory = DirectoryRoot(config.root)
        self.root = Path(self.directory.path)
        self._root_text = self.directory.path
        state = os.path.realpath(config.state_dir)
        self.state_parts: tuple[str, ...] | None = None
        if _within(state, self._root_text) and state != self._root_text:
            self.state_parts = tuple(os.path.relpath(state, self._root_text).split(os.sep))

    @property
    def max_file_bytes(self) -> int:
        return self.config.max_file_bytes

    # --- resolution ----------------------------------------------------------------------
    def resolve(self, path: str, *, follow_final: bool = True) -> ResolvedPath:
        """Where ``path`` really is inside the workspace, or a refusal.

        ``follow_final=False`` resolves the folders but keeps the last component as named,
        so a symlink itself can be deleted or listed.
        """
        if not isinstance(path, str):
            raise InvalidInputError("path must be a string")
        shown = _shown(path)
        if "\0" in path:
            raise InvalidInputError(f"{shown} contains a NUL byte")
        if not path.strip():
            raise InvalidInputError("path is empty; use '.' for the workspace itself")
        if len(path) > MAX_PATH_CHARS:
            raise InvalidInputError(f"path is longer than {MAX_PATH_CHARS} characters")
        candidate = path if os.path.isabs(path) else os.path.join(self._root_text, path)
        lexical = os.path.normpath(candidate)
        if not _within(lexical, self._root_text):
            how = "is an absolute path" if os.path.isabs(path) else "climbs out with '..'"
            raise PathOutsideWorkspaceError(f"{shown} {how} outside the workspace; refused")
        try:
            # realpath reads links one by one: a link renamed away meanwhile raises.
            if follow_final or lexical == self._root_text:
                real = os.path.realpath(lexical)
            else:
                head, tail = os.path.split(lexical)
                real = os.path.join(os.path.realpath(head), tail)
        except OSError as exc:
            raise os_error(exc, shown) from None
        if not _within(real, self._root_text):
            raise PathOutsideWorkspaceError(
                f"{shown} leads outside the workspace through a symbolic link; refused"
            )
        relative = os.path.relpath(real, self._root_text)
        parts = () if relative == "." else tuple(relative.split(os.sep))
        if self.state_parts and parts[: len(self.state_parts)] == self.state_parts:
            raise PathOutsideWorkspaceError(
                f"{shown} is inside the server's private state folder; refused"
            )
        return ResolvedPath(parts=parts, shown=shown)

    def is_private(self, parts: tuple[str, ...]) -> bool:
        """Whether real components name the state folder or something in it."""
        return bool(self.state_parts) and parts[: len(self.state_parts or ())] == self.state_parts

    # --- descriptors ---------------------------------------------------------------------
    def open_dir(self, parts: tuple[str, ...], shown: str, *, create: bool = False) -> int:
        """A descriptor of a real folder under the root, walked without following symlinks.

        With ``create``, missing folders are made. The caller closes the descriptor.
        """
        return self.directory.open_dir(parts, shown, create=create)

    def create_file(self, parts: tuple[str, ...], shown: str) -> int:
        """Create a new file (``O_EXCL``, links never followed); a descriptor to write."""
        if self.is_private(parts):
            raise PathOutsideWorkspaceError(f"{shown} is inside the server's private state")
        return self.directory.create_file(parts, shown)

    def check_file(self, st: os.stat_result, shown: str) -> None:
        """Refuse anything but a regular file with a single link."""
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise InvalidInputError(f"{shown} is a folder, not a file")
        if stat.S_ISLNK(mode):
            raise PathOutsideWorkspaceError(f"{shown} is a symbolic link that cannot be followed")
        if not stat.S_ISREG(mode):
            raise InvalidInputError(f"{shown} is a {entry_type(mode)}, not a regular file; refused")
        if st.st_nlink > 1:
            raise PathOutsideWorkspaceError(
                f"{shown} has {st.st_nlink} hard links; another link may be outside the "
                "workspace, so it is refused (delete it, or copy it inside the kernel)"
            )

    def check_size(self, size: int, shown: str, *, what: str = "file") -> None:
        limit = self.config.max_file_bytes
        if size > limit:
            raise FileTooLargeError(
                f"{shown}: the {what} is {format_bytes(size)}, larger than the "
                f"{format_bytes(limit)} limit (MCP_MAX_FILE_BYTES)"
            )

    def open_file(self, resolved: ResolvedPath) -> tuple[int, os.stat_result]:
        """Open a regular file for reading after every check; returns (fd, fstat)."""
        if resolved.is_root:
            raise InvalidInputError(f"{resolved.shown} is a folder, not a file")
        parent = self.open_dir(resolved.parent_parts, resolved.shown)
        try:
            try:
                before = os.stat(resolved.name, dir_fd=parent, follow_symlinks=False)
                self.check_file(before, resolved.shown)
                fd = os.open(resolved.name, READ_FLAGS, dir_fd=parent)
            except OSError as exc:
                raise os_error(exc, resolved.shown) from None
        finally:
            os.close(parent)
        try:
            after = os.fstat(fd)
            self.check_file(after, resolved.shown)
            if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                raise PathOutsideWorkspaceError(
                    f"{resolved.shown} was replaced while being opened; refused"
                )
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd, after

    def lstat(self, resolved: ResolvedPath) -> os.stat_result:
        """The entry itself (a symlink is not followed); FILE_NOT_FOUND when missing."""
        if resolved.is_root:
            try:
                return os.stat(self._root_text)
            except OSError as exc:
                raise os_error(exc, resolved.shown) from None
        parent = self.open_dir(resolved.parent_parts, resolved.shown)
        try:
            return os.stat(resolved.name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise os_error(exc, resolved.shown) from None
        finally:
            os.close(parent)

    def read_bytes(
        self, resolved: ResolvedPath, offset: int = 0, limit: int | None = None
    ) -> tuple[bytes, os.stat_result]:
        """Read a checked file, whole or a range; the size cap applies to what is read."""
        fd, st = self.open_file(resolved)
        try:
            available = max(st.st_size - offset, 0)
            wanted = available if limit is None else min(limit, available)
            what = "file" if wanted == st.st_size else "part to read"
            self.check_size(wanted, resolved.shown, what=what)
            chunks: list[bytes] = []
            position = offset
            while position < offset + wanted:
                try:
                    chunk = os.pread(fd, min(offset + wanted - position, 1 << 20), position)
                except OSError as exc:
                    raise os_error(exc, resolved.shown) from None
                if not chunk:
                    break
                chunks.append(chunk)
                position += len(chunk)
            return b"".join(chunks), st
        finally:
            os.close(fd)
