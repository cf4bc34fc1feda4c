"""Workspace file operations behind the file tools: list, read, write, delete, info.

Every operation resolves its path with ``Workspace`` and then works on descriptors walked
from the root without following symlinks, so what was checked is what is touched. These
are blocking calls; the tools run them in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fnmatch
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from python_mcp_server.core.workspace.atomic_write import TEMP_PREFIX, AtomicWriter
from python_mcp_server.core.workspace.file_types import (
    decode_text,
    entry_type,
    guess_mime,
    is_image,
)
from python_mcp_server.core.workspace.resolver import ResolvedPath, Workspace, os_error
from python_mcp_server.errors import (
    FileNotFoundInWorkspaceError,
    InvalidInputError,
    PathOutsideWorkspaceError,
)
from python_mcp_server.models.files import (
    DeleteFileResult,
    FileEntry,
    FileList,
    FolderStats,
    ReadFileResult,
    WorkspaceInfo,
    WriteFileResult,
)

MAX_LIST_ENTRIES = 2000
STANDARD_FOLDERS = ("scripts", "outputs", "uploads")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class FileContent:
    """A read: the wire result plus the raw bytes when they are an image to attach."""

    result: ReadFileResult
    image: bytes | None = None


def _modified(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)


def _scandir_sorted(fd: int) -> list[os.DirEntry[str]]:
    with os.scandir(fd) as entries:
        return sorted(entries, key=lambda e: e.name)


class WorkspaceFiles:
    """The file operations of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def _hidden(self, parts: tuple[str, ...], name: str) -> bool:
        return self.workspace.is_private((*parts, name)) or (
            name.startswith(TEMP_PREFIX) and name.endswith(".part")
        )

    # --- list ------------------------------------------------------------------------------
    def list(
        self,
        path: str = ".",
        *,
        recursive: bool = False,
        max_depth: int = 3,
        pattern: str | None = None,
    ) -> FileList:
        target = self.workspace.resolve(path, follow_final=False)
        st = self.workspace.lstat(target)
        if not stat.S_ISDIR(st.st_mode):
            entry = FileEntry(
                path=target.relative,
                name=target.name,
                type=entry_type(st.st_mode),
                size=st.st_size if stat.S_ISREG(st.st_mode) else None,
                modified=_modified(st),
            )
            return FileList(
                path=target.relative, entries=[entry], tree=entry.name, total=1, truncated=False
            )
        depth = max_depth if recursive else 1
        entries: list[FileEntry] = []
        lines: list[str] = [f"{target.relative.rstrip('/')}/"]
        truncated = False
        fd = self.workspace.open_dir(target.parts, target.shown)
        try:
            for entry, level in self._walk(fd, target.parts, depth):
                if len(entries) >= MAX_LIST_ENTRIES:
                    truncated = True
                    break
                if pattern and not fnmatch.fnmatch(entry.name, pattern):
                    continue
                entries.append(entry)
                size = f" ({entry.size} B)" if entry.size is not None else ""
                suffix = "/" if entry.type == "directory" else ""
                arrow = " -> (symlink)" if entry.type == "symlink" else ""
                lines.append(f"{'  ' * level}{entry.name}{suffix}{size}{arrow}")
        finally:
            os.close(fd)
        if truncated:
            lines.append(f"... more than {MAX_LIST_ENTRIES} entries; list a subfolder")
        return FileList(
            path=target.relative,
            entries=entries,
            tree="\n".join(lines),
            total=len(entries),
            truncated=truncated,
        )

    def _walk(
        self, fd: int, parts: tuple[str, ...], depth: int, level: int = 1
    ) -> Iterator[tuple[FileEntry, int]]:
        for item in _scandir_sorted(fd):
            if self._hidden(parts, item.name):
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = entry_type(st.st_mode)
            yield (
                FileEntry(
                    path="/".join((*parts, item.name)),
                    name=item.name,
                    type=kind,
                    size=st.st_size if kind == "file" else None,
                    modified=_modified(st),
                ),
                level,
            )
            if kind == "directory" and level < depth:
                try:
                    child = os.open(item.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    yield from self._walk(child, (*parts, item.name), depth, level + 1)
                finally:
                    os.close(child)

    # --- read ------------------------------------------------------------------------------
    def read(self, path: str, *, offset: int = 0, max_bytes: int | None = None) -> FileContent:
        if offset < 0:
            raise InvalidInputError("offset must be 0 or more")
        if max_bytes is not None and max_bytes < 1:
            raise InvalidInputError("max_bytes must be 1 or more")
        target = self.workspace.resolve(path)
        data, st = self.workspace.read_bytes(target, offset, max_bytes)
        more = offset + len(data) < st.st_size
        mime = guess_mime(target.name)
        base = {"path": target.relative, "size": st.st_size, "offset": offset, "mime_type": mime}
        text = None if is_image(mime) else decode_text(data, more, mime)
        if text is None:
            return FileContent(
                result=ReadFileResult(
                    **base,
                    bytes_read=len(data),
                    encoding="base64",
                    content=base64.b64encode(data).decode("ascii"),
                    truncated=more,
                    message=_more_message(more, offset + len(data)),
                ),
                image=data if is_image(mime) else None,
            )
        content, used, replaced = text
        notes = []
        if replaced:
            notes.append(
                f"{replaced} invalid UTF-8 byte sequence(s) were replaced by U+FFFD: the file "
                "is not pure UTF-8"
            )
        if more or used < len(data):
            notes.append(_more_message(True, offset + used) or "")
        return FileContent(
            result=ReadFileResult(
                **base,
                bytes_read=used,
                encoding="utf-8",
                content=content,
                truncated=more or used < len(data),
                replaced=replaced,
                message="; ".join(notes) or None,
            )
        )

    # --- write / delete --------------------------------------------------------------------
    def write(
        self, path: str, content: str, *, binary_base64: bool = False, overwrite: bool = True
    ) -> WriteFileResult:
        if binary_base64:
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidInputError(f"content is not valid base64: {exc}") from None
        else:
            data = content.encode("utf-8")
        target = self.workspace.resolve(path)
        if target.is_root:
            raise InvalidInputError(f"{target.shown} is the workspace folder, not a file")
        self.workspace.check_size(len(data), target.shown, what="content")
        created = not self._exists(target)
        with AtomicWriter(self.workspace, target.parent_parts, target.shown) as writer:
            writer.write(data)
            size = writer.commit(target, overwrite=overwrite)
        return WriteFileResult(path=target.relative, size=size, created=created)

    def _exists(self, target: ResolvedPath) -> bool:
        try:
            self.workspace.lstat(target)
        except FileNotFoundInWorkspaceError:
            return False
        return True

    def delete(self, path: str, *, recursive: bool = False) -> DeleteFileResult:
        target = self.workspace.resolve(path, follow_final=False)
        if target.is_root:
            raise InvalidInputError("the workspace folder itself cannot be deleted")
        state = self.workspace.state_parts
        if state and state[: len(target.parts)] == target.parts:
            raise PathOutsideWorkspaceError(
                f"{target.shown} holds the server's private state folder; refused"
            )
        parent = self.workspace.open_dir(target.parent_parts, target.shown)
        try:
            st = os.stat(target.name, dir_fd=parent, follow_symlinks=False)
            kind = entry_type(st.st_mode)
            if kind != "directory":
                os.unlink(target.name, dir_fd=parent)
                return DeleteFileResult(
                    path=target.relative, type=kind, files_deleted=1, directories_deleted=0
                )
            if not recursive:
                try:
                    os.rmdir(target.name, dir_fd=parent)
                except OSError as exc:
                    if exc.errno == errno.ENOTEMPTY:
                        raise InvalidInputError(
                            f"{target.shown} is a folder that is not empty; pass "
                            "recursive=true to delete it with everything in it"
                        ) from None
                    raise
                return DeleteFileResult(
                    path=target.relative, type=kind, files_deleted=0, directories_deleted=1
                )
            files, dirs = _remove_tree(parent, target.name)
            return DeleteFileResult(
                path=target.relative, type=kind, files_deleted=files, directories_deleted=dirs
            )
        except OSError as exc:
            raise os_error(exc, target.shown) from None
        finally:
            os.close(parent)

    # --- HTTP transfer -----------------------------------------------------------------------
    def open_download(self, path: str) -> tuple[int, int, str, str]:
        """Open a file to stream: (fd, size, workspace path, MIME type). The caller closes
        the descriptor."""
        target = self.workspace.resolve(path)
        fd, st = self.workspace.open_file(target)
        try:
            self.workspace.check_size(st.st_size, target.shown)
        except BaseException:
            os.close(fd)
            raise
        return fd, st.st_size, target.relative, guess_mime(target.name)

    def begin_upload(self) -> AtomicWriter:
        """A writer for an upload whose destination is known only at the end: it is staged
        under a hidden name in the workspace root, then renamed into place."""
        return AtomicWriter(self.workspace, (), "'upload'", what="upload")

    def upload_target(self, path: str, filename: str | None) -> ResolvedPath:
        """Where an upload goes: ``path`` itself, or ``path/<filename>`` when ``path`` ends
        with '/' or is a folder."""
        folder = path.endswith("/") or path in ("", ".")
        if not folder:
            target = self.workspace.resolve(path)
            try:
                folder = stat.S_ISDIR(self.workspace.lstat(target).st_mode)
            except FileNotFoundInWorkspaceError:
                folder = False
            if not folder:
                return target
        name = upload_filename(filename)
        return self.workspace.resolve(f"{path.rstrip('/') or '.'}/{name}")

    # --- info ------------------------------------------------------------------------------
    def info(self, tracking: str) -> WorkspaceInfo:
        totals = {"files": 0, "dirs": 0, "bytes": 0}
        per_folder = {name: [0, 0] for name in STANDARD_FOLDERS}
        root = ResolvedPath(parts=(), shown="'.'")
        fd = self.workspace.open_dir(root.parts, root.shown)
        try:
            for entry, _level in self._walk(fd, (), depth=10_000):
                top = entry.path.split("/", 1)[0]
                if entry.type == "directory":
                    totals["dirs"] += 1
                    continue
                size = entry.size or 0
                totals["files"] += 1
                totals["bytes"] += size
                if top in per_folder and "/" in entry.path:
                    per_folder[top][0] += 1
                    per_folder[top][1] += size
        finally:
            os.close(fd)
        usage = shutil.disk_usage(self.workspace.root)
        return WorkspaceInfo(
            folders=[
                FolderStats(path=name, files=count, bytes=size)
                for name, (count, size) in per_folder.items()
            ],
            files=totals["files"],
            directories=totals["dirs"],
            total_bytes=totals["bytes"],
            free_bytes=usage.free,
            disk_bytes=usage.total,
            max_file_bytes=self.workspace.max_file_bytes,
            new_files_tracking="inotify" if tracking == "inotify" else "scan",
        )


def upload_filename(filename: str | None) -> str:
    """The last component of a client-supplied file name, or INVALID_INPUT."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or "\0" in name:
        raise InvalidInputError(
            "the uploaded file has no usable name; give the destination file in the form "
            "field 'path'"
        )
    return name


def _more_message(more: bool, next_offset: int) -> str | None:
    return f"more bytes follow: read again with offset={next_offset}" if more else None


def _remove_tree(parent: int, name: str) -> tuple[int, int]:
    """Delete a folder and its contents through descriptors; symlinks are removed, not
    followed. Returns (files, folders) deleted."""
    files = dirs = 0
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        for item in _scandir_sorted(fd):
            if item.is_dir(follow_symlinks=False):
                sub_files, sub_dirs = _remove_tree(fd, item.name)
                files += sub_files
                dirs += sub_dirs
            else:
                os.unlink(item.name, dir_fd=fd)
                files += 1
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)
    return files, dirs + 1
