"""Wire models of the workspace tools and routes: listings, reads, writes, scripts, info."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from python_mcp_server.models.execution import ExecutionErrorInfo
from python_mcp_server.models.wire import WireModel

EntryType = Literal["file", "directory", "symlink", "fifo", "socket", "device"]


class FileEntry(WireModel):
    """One entry of a listing. Symlinks are shown, never followed."""

    path: str = Field(description="Workspace-relative path.")
    name: str
    type: EntryType
    size: int | None = Field(None, description="Bytes, for files.")
    modified: datetime = Field(description="Last modification time (UTC).")


class FileList(WireModel):
    """What list_files found under a folder."""

    path: str = Field(description="The listed folder, workspace-relative.")
    entries: list[FileEntry]
    tree: str = Field(description="The same entries drawn as an indented tree.")
    total: int = Field(description="Entries returned.")
    truncated: bool = Field(False, description="More entries exist than were returned.")


class ReadFileResult(WireModel):
    """A file's bytes: UTF-8 text, or base64 for binary files."""

    path: str
    size: int = Field(description="Size of the whole file in bytes.")
    offset: int = Field(description="First byte returned.")
    bytes_read: int = Field(description="Bytes of the file this result covers.")
    encoding: Literal["utf-8", "base64"]
    content: str
    mime_type: str
    truncated: bool = Field(
        False, description="More bytes follow; read again with offset=offset+bytes_read."
    )
    replaced: int = Field(
        0, description="Invalid UTF-8 sequences shown as U+FFFD in a text result."
    )
    message: str | None = None


class WriteFileResult(WireModel):
    """A file written atomically."""

    path: str
    size: int
    created: bool = Field(description="True for a new file, False when one was replaced.")


class DeleteFileResult(WireModel):
    """What delete_file removed."""

    path: str
    type: EntryType
    files_deleted: int
    directories_deleted: int


class SaveScriptResult(WireModel):
    """A script saved under scripts/."""

    path: str = Field(description="Workspace-relative path, ready for run_script.")
    size: int
    created: bool
    syntax_error: str | None = Field(
        None, description="Why the script does not compile, if it does not (it is saved anyway)."
    )


class ScriptResult(WireModel):
    """The outcome of run_script. A failing script is status "error", not a tool error."""

    path: str
    mode: Literal["subprocess", "kernel"]
    status: Literal["ok", "error", "timeout"]
    returncode: int | None = Field(
        None, description="Exit code (subprocess mode); negative: ended by that signal."
    )
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    new_files: list[str] = Field(
        default_factory=list, description="Workspace files the script created or changed."
    )
    execution_time: float = 0.0
    session_id: str = Field(description="Session whose interpreter (or kernel) ran it.")
    error: ExecutionErrorInfo | None = Field(None, description="Kernel mode: the exception.")
    truncated: bool = False
    stdout_path: str | None = Field(None, description="File with the full stdout when cut.")
    stderr_path: str | None = Field(None, description="File with the full stderr when cut.")
    message: str | None = None


class FolderStats(WireModel):
    """Counts for one folder and everything below it."""

    path: str
    files: int
    bytes: int


class WorkspaceInfo(WireModel):
    """The workspace at a glance; every path is relative to the workspace."""

    root: str = Field(".", description="Always '.': paths are relative to the workspace.")
    folders: list[FolderStats] = Field(description="scripts/, outputs/ and uploads/.")
    files: int
    directories: int
    total_bytes: int
    free_bytes: int = Field(description="Free space on the workspace's disk.")
    disk_bytes: int = Field(description="Size of the workspace's disk.")
    max_file_bytes: int = Field(description="Largest file read, written or uploaded.")
    new_files_tracking: Literal["inotify", "scan"] = Field(
        description="How new_files is found: inotify events, or a scan by modification time."
    )
    output_path: str = Field("outputs", description="OUTPUT_PATH of kernels, relative.")


class UploadResult(WireModel):
    """A file received by POST /files/upload."""

    path: str
    size: int
    created: bool
