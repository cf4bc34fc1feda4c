"""Opening paths under a folder through directory descriptors, never following a link.

``DirectoryRoot`` is the one primitive behind every server-side read and write in a folder
kernel code can change (the workspace, an environment): a path is walked component by
component from a descriptor of the root with ``O_DIRECTORY | O_NOFOLLOW``, and files are
created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to the last folder's descriptor. A
symlink planted anywhere on the way, even between a check and the use, makes the call fail
with ``PATH_OUTSIDE_WORKSPACE``; nothing is ever written or read through it. Every
``OSError`` becomes a project error with a stable code (``os_error``), so a race (a folder
renamed away while being walked) is a clean refusal, never an internal error.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from python_mcp_server.errors import (
    DiskFullError,
    FileExistsInWorkspaceError,
    FileNotFoundInWorkspaceError,
    FileTooLargeError,
    InvalidInputError,
    PathOutsideWorkspaceError,
    ServerError,
)

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
#: errno values that mean the file system has no room left.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception says the file system (or a quota) is full."""
    if isinstance(exc, DiskFullError):
        return True
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def os_error(exc: OSError, shown: str) -> ServerError:
    """An OSError as a project error, without the absolute path the OSError carries."""
    if exc.errno == errno.ENOENT:
        return FileNotFoundInWorkspaceError(
            f"{shown} does not exist (or was moved away while being opened)"
        )
    if exc.errno == errno.ENOTDIR:
        return InvalidInputError(f"{shown}: a part of the path is a file, not a folder")
    if exc.errno == errno.ELOOP:
        return PathOutsideWorkspaceError(
            f"{shown} is or changed into a symbolic link while being opened; refused"
        )
    if exc.errno == errno.EEXIST:
        return FileExistsInWorkspaceError(f"{shown} already exists")
    if exc.errno in DISK_FULL_ERRNOS:
        return DiskFullError(f"{shown}: the disk is full (no space left on the file system)")
    if exc.errno == errno.EFBIG:
        return FileTooLargeError(f"{shown}: larger than the file system or the limit allows")
    reason = exc.strerror or type(exc).__name__
    return InvalidInputError(f"{shown}: {reason}")


def is_symlink_at(name: str, dir_fd: int) -> bool:
    """Whether ``name`` in the folder ``dir_fd`` is a symlink (False when it is gone)."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte (``os.write`` may write fewer)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class DirectoryRoot:
    """A folder whose contents are opened only through descriptors, links never followed."""

    def __init__(self, root: Path) -> None:
        #: The root's real path (the server configured it: it is trusted).
        self.path = os.path.realpath(root)

    def open_dir(self, parts: tuple[str, ...], shown: str, *, create: bool = False) -> int:
        """A descriptor of the folder ``parts`` under the root, walked without following a
        symlink. With ``create``, missing folders are made. The caller closes it."""
        try:
            fd = os.open(self.path, DIR_FLAGS)
        except OSError as exc:
            raise os_error(exc, shown) from None
        try:
            for part in parts:
                if part in ("", ".", "..") or "/" in part:
                    raise InvalidInputError(f"{shown}: {part!r} is not a folder name")
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP) and is_symlink_at(part, fd):
                        raise PathOutsideWorkspaceError(
                            f"{shown}: a folder on the way is or changed into a symbolic "
                            "link; refused"
                        ) from None
                    if exc.errno != errno.ENOENT or not create:
                        raise
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as exc:
            os.close(fd)
            raise os_error(exc, shown) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def create_file(self, parts: tuple[str, ...], shown: str, *, mode: int = 0o644) -> int:
        """Create a new file (its folders too) and return a descriptor open for writing.

        ``O_EXCL | O_NOFOLLOW``: a name that exists, symlink or not, is refused
        (``FILE_EXISTS``), so a link planted at the name is never written through.
        """
        if not parts:
            raise InvalidInputError(f"{shown} names a folder, not a file")
        parent = self.open_dir(parts[:-1], shown, create=True)
        try:
            return os.open(parts[-1], CREATE_FLAGS, mode, dir_fd=parent)
        except OSError as exc:
            raise os_error(exc, shown) from None
        finally:
            os.close(parent)

    def read_small(self, parts: tuple[str, ...], shown: str, *, limit: int) -> bytes:
        """The bytes of a small regular file (a link, FIFO or device is refused)."""
        if not parts:
            raise InvalidInputError(f"{shown} names a folder, not a file")
        parent = self.open_dir(parts[:-1], shown)
        try:
            fd = os.open(parts[-1], READ_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise os_error(exc, shown) from None
        finally:
            os.close(parent)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidInputError(f"{shown} is not a regular file; refused")
            if st.st_size > limit:
                raise FileTooLargeError(f"{shown} is larger than {limit} bytes; refused")
            return os.pread(fd, limit, 0)
        except OSError as exc:
            raise os_error(exc, shown) from None
        finally:
            os.close(fd)

    def replace_file(self, parts: tuple[str, ...], shown: str, data: bytes) -> None:
        """Write a whole file atomically: a new temporary file (``O_EXCL``), then a rename
        over the name within the same folder descriptor."""
        if not parts:
            raise InvalidInputError(f"{shown} names a folder, not a file")
        parent = self.open_dir(parts[:-1], shown, create=True)
        temp = f".pmcp-{secrets.token_hex(8)}.part"
        try:
            fd = os.open(temp, CREATE_FLAGS, 0o644, dir_fd=parent)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            raise os_error(exc, shown) from None
        finally:
            try:
                os.unlink(temp, dir_fd=parent)
            except OSError:
                pass
            os.close(parent)
