"""Atomic writes inside the workspace: a temporary file, then one rename into place.

Readers never see half a file, a failed or oversized write leaves nothing behind, and the
size cap is enforced while bytes arrive (an upload is stopped at the limit, not after).
The temporary file may be staged in another folder than the target (an upload whose
destination is only known at the end); the rename then moves it across folders, or copies
it when they are on different file systems.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from types import TracebackType

from python_mcp_server.core.workspace.dirfd import write_all
from python_mcp_server.core.workspace.resolver import ResolvedPath, Workspace, os_error
from python_mcp_server.errors import FileExistsInWorkspaceError, InvalidInputError

_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_PREFIX = ".pmcp-"


def _temp_name() -> str:
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}.part"


class AtomicWriter:
    """Collects bytes in a temporary file and renames it onto the target on ``commit``."""

    def __init__(
        self,
        workspace: Workspace,
        stage_parts: tuple[str, ...],
        shown: str,
        *,
        what: str = "content",
    ) -> None:
        self._workspace = workspace
        self._shown = shown
        self._what = what
        self._dir_fd = workspace.open_dir(stage_parts, shown, create=True)
        self._temp = _temp_name()
        try:
            self._fd = os.open(self._temp, _TEMP_FLAGS, 0o666, dir_fd=self._dir_fd)
        except OSError as exc:
            os.close(self._dir_fd)
            raise os_error(exc, shown) from None
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        """Append bytes; FILE_TOO_LARGE as soon as the total passes the cap."""
        self.size += len(data)
        self._workspace.check_size(self.size, self._shown, what=self._what)
        try:
            write_all(self._fd, data)
        except OSError as exc:
            raise os_error(exc, self._shown) from None

    def commit(self, target: ResolvedPath, *, overwrite: bool = True) -> int:
        """Put the bytes at ``target`` (creating its folders); returns the size."""
        if target.is_root:
            raise InvalidInputError(f"{target.shown} is the workspace folder, not a file")
        dest_fd = self._workspace.open_dir(target.parent_parts, target.shown, create=True)
        try:
            self._check_destination(dest_fd, target, overwrite)
            os.fsync(self._fd)
            try:
                self._place(self._dir_fd, self._temp, dest_fd, target.name, overwrite)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_across(dest_fd, target.name, overwrite)
        except FileExistsError:
            raise FileExistsInWorkspaceError(
                f"{target.shown} already exists; pass overwrite=true to replace it"
            ) from None
        except OSError as exc:
            raise os_error(exc, target.shown) from None
        finally:
            os.close(dest_fd)
            self.abort()
        return self.size

    def _check_destination(self, dest_fd: int, target: ResolvedPath, overwrite: bool) -> None:
        try:
            existing = os.stat(target.name, dir_fd=dest_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(existing.st_mode):
            raise InvalidInputError(f"{target.shown} is a folder; name a file inside it")
        if not overwrite:
            raise FileExistsInWorkspaceError(
                f"{target.shown} already exists; pass overwrite=true to replace it"
            )
        self._workspace.check_file(existing, target.shown)

    @staticmethod
    def _place(src_fd: int, src: str, dest_fd: int, name: str, overwrite: bool) -> None:
        if overwrite:
            os.replace(src, name, src_dir_fd=src_fd, dst_dir_fd=dest_fd)
        else:
            # link() fails if the name exists: no window where another writer is replaced.
            os.link(src, name, src_dir_fd=src_fd, dst_dir_fd=dest_fd, follow_symlinks=False)

    def _copy_across(self, dest_fd: int, name: str, overwrite: bool) -> None:
        temp = _temp_name()
        out = os.open(temp, _TEMP_FLAGS, 0o666, dir_fd=dest_fd)
        try:
            position = 0
            while chunk := os.pread(self._fd, 1 << 20, position):
                write_all(out, chunk)
                position += len(chunk)
            os.fsync(out)
            self._place(dest_fd, temp, dest_fd, name, overwrite)
        finally:
            os.close(out)
            try:
                os.unlink(temp, dir_fd=dest_fd)
            except FileNotFoundError:
                pass

    def abort(self) -> None:
        """Drop the temporary file (after a commit it is only a second name, or gone)."""
        if self._done:
            return
        self._done = True
        os.close(self._fd)
        try:
            os.unlink(self._temp, dir_fd=self._dir_fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._dir_fd)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()
