"""The workspace resolver, file operations and new-file tracker, on a real file system."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from python_mcp_server.core.workspace import new_files as new_files_module
from python_mcp_server.core.workspace.atomic_write import TEMP_PREFIX
from python_mcp_server.core.workspace.files import WorkspaceFiles, upload_filename
from python_mcp_server.core.workspace.new_files import NewFilesTracker
from python_mcp_server.core.workspace.resolver import Workspace, WorkspaceConfig
from python_mcp_server.errors import ErrorCode, ServerError

LIMIT = 4096


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    for folder in ("scripts", "outputs", "uploads", ".state"):
        (path / folder).mkdir(parents=True)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("top secret")
    return secret


@pytest.fixture
def files(root: Path) -> WorkspaceFiles:
    return WorkspaceFiles(Workspace(WorkspaceConfig(root, root / ".state", LIMIT)))


def refusal(excinfo: pytest.ExceptionInfo[ServerError], code: ErrorCode, tmp: Path) -> str:
    """The error's message, after checking its code and that it shows no server path."""
    error = excinfo.value
    assert error.code is code, error
    assert str(tmp) not in error.message
    assert "/tmp" not in error.message
    return error.message


# --- resolution ----------------------------------------------------------------------------
def test_paths_inside_resolve_to_workspace_relative_parts(
    files: WorkspaceFiles, root: Path
) -> None:
    ws = files.workspace
    assert ws.resolve(".").relative == "."
    assert ws.resolve("data/a.csv").relative == "data/a.csv"
    assert ws.resolve("data/../b.txt").relative == "b.txt"
    assert ws.resolve(str(root / "outputs" / "x.png")).relative == "outputs/x.png"
    (root / "real").mkdir()
    (root / "alias").symlink_to("real")
    assert ws.resolve("alias/f.txt").relative == "real/f.txt"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../secret.txt", ErrorCode.PATH_OUTSIDE_WORKSPACE),
        ("data/../../secret.txt", ErrorCode.PATH_OUTSIDE_WORKSPACE),
        ("/etc/passwd", ErrorCode.PATH_OUTSIDE_WORKSPACE),
        (".state/kernels", ErrorCode.PATH_OUTSIDE_WORKSPACE),
        (".state", ErrorCode.PATH_OUTSIDE_WORKSPACE),
        ("scripts/../.state/x", ErrorCode.PATH_OUTSIDE_WORKSPACE),
        ("a\0b", ErrorCode.INVALID_INPUT),
        ("", ErrorCode.INVALID_INPUT),
        ("x" * 5000, ErrorCode.INVALID_INPUT),
    ],
)
def test_refused_paths(files: WorkspaceFiles, tmp_path: Path, path: str, code: ErrorCode) -> None:
    with pytest.raises(ServerError) as excinfo:
        files.workspace.resolve(path)
    refusal(excinfo, code, tmp_path)


def test_symlinks_leading_outside_are_refused(
    files: WorkspaceFiles, root: Path, outside: Path, tmp_path: Path
) -> None:
    (root / "file_link").symlink_to(outside)
    (root / "dir_link").symlink_to(outside.parent)
    (root / "relative_link").symlink_to("../outside/secret.txt")
    for path in ("file_link", "dir_link/secret.txt", "relative_link", "dir_link"):
        with pytest.raises(ServerError) as excinfo:
            files.read(path)
        assert "symbolic link" in refusal(excinfo, ErrorCode.PATH_OUTSIDE_WORKSPACE, tmp_path)
    with pytest.raises(ServerError) as excinfo:
        files.write("dir_link/new.txt", "x")
    refusal(excinfo, ErrorCode.PATH_OUTSIDE_WORKSPACE, tmp_path)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["secret.txt"]


def test_a_folder_swapped_for_a_symlink_after_resolution_is_refused(
    files: WorkspaceFiles, root: Path, outside: Path, tmp_path: Path
) -> None:
    (root / "data").mkdir()
    (root / "data" / "secret.txt").write_text("inside")
    resolved = files.workspace.resolve("data/secret.txt")
    (root / "data" / "secret.txt").unlink()
    (root / "data").rmdir()
    (root / "data").symlink_to(outside.parent)
    with pytest.raises(ServerError) as excinfo:
        files.workspace.open_file(resolved)
    refusal(excinfo, ErrorCode.PATH_OUTSIDE_WORKSPACE, tmp_path)


def test_hardlinked_files_are_refused(
    files: WorkspaceFiles, root: Path, outside: Path, tmp_path: Path
) -> None:
    os.link(outside, root / "hard.txt")
    with pytest.raises(ServerError) as excinfo:
        files.read("hard.txt")
    assert "hard links" in refusal(excinfo, ErrorCode.PATH_OUTSIDE_WORKSPACE, tmp_path)
    with pytest.raises(ServerError) as excinfo:
        files.write("hard.txt", "overwritten")
    refusal(excinfo, ErrorCode.PATH_OUTSIDE_WORKSPACE, tmp_path)
    assert outside.read_text() == "top secret"
    deleted = files.delete("hard.txt")  # removes the workspace's name only
    assert deleted.files_deleted == 1
    assert outside.read_text() == "top secret"


def test_fifos_sockets_and_devices_are_refused_without_blocking(
    files: WorkspaceFiles, root: Path, tmp_path: Path
) -> None:
    os.mkfifo(root / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        for path in ("pipe", "sock"):
            with pytest.raises(ServerError) as excinfo:
                files.read(path)
            assert "not a regular file" in refusal(excinfo, ErrorCode.INVALID_INPUT, tmp_path)
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:  # unprivileged: check the stat of a real device instead
        with pytest.raises(ServerError) as excinfo:
            files.workspace.check_file(os.stat("/dev/null"), "'null'")
    else:
        with pytest.raises(ServerError) as excinfo:
            files.read("null")
    assert "device" in refusal(excinfo, ErrorCode.INVALID_INPUT, tmp_path)


# --- size caps -------------------------------------------------------------------------------
def test_reads_and_writes_over_the_cap_are_refused(
    files: WorkspaceFiles, root: Path, tmp_path: Path
) -> None:
    (root / "big.bin").write_bytes(b"a" * (LIMIT + 1))
    with pytest.raises(ServerError) as excinfo:
        files.read("big.bin")
    assert "MCP_MAX_FILE_BYTES" in refusal(excinfo, ErrorCode.FILE_TOO_LARGE, tmp_path)
    part = files.read("big.bin", offset=10, max_bytes=100).result
    assert (part.bytes_read, part.truncated, part.content) == (100, True, "a" * 100)
    with pytest.raises(ServerError) as excinfo:
        files.write("new.txt", "b" * (LIMIT + 1))
    refusal(excinfo, ErrorCode.FILE_TOO_LARGE, tmp_path)
    assert not (root / "new.txt").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]


# --- operations ------------------------------------------------------------------------------
def test_write_is_atomic_creates_folders_and_respects_overwrite(
    files: WorkspaceFiles, root: Path, tmp_path: Path
) -> None:
    first = files.write("deep/er/a.txt", "one")
    assert (first.path, first.size, first.created) == ("deep/er/a.txt", 3, True)
    second = files.write("deep/er/a.txt", "two!")
    assert (second.size, second.created) == (4, False)
    assert (root / "deep/er/a.txt").read_text() == "two!"
    with pytest.raises(ServerError) as excinfo:
        files.write("deep/er/a.txt", "three", overwrite=False)
    refusal(excinfo, ErrorCode.FILE_EXISTS, tmp_path)
    assert (root / "deep/er/a.txt").read_text() == "two!"
    files.write("bin.dat", "AAEC/w==", binary_base64=True)
    assert (root / "bin.dat").read_bytes() == b"\x00\x01\x02\xff"
    with pytest.raises(ServerError) as excinfo:
        files.write("bad.dat", "not base64!", binary_base64=True)
    refusal(excinfo, ErrorCode.INVALID_INPUT, tmp_path)
    leftovers = [p for p in root.rglob(f"{TEMP_PREFIX}*")]
    assert leftovers == []


def test_read_text_binary_and_invalid_utf8(files: WorkspaceFiles, root: Path) -> None:
    (root / "t.txt").write_text("héllo", encoding="utf-8")
    text = files.read("t.txt").result
    assert (text.encoding, text.content, text.replaced) == ("utf-8", "héllo", 0)
    (root / "b.bin").write_bytes(bytes(range(256)))
    binary = files.read("b.bin").result
    assert binary.encoding == "base64"
    (root / "mixed.txt").write_bytes(b"ok \xff\xfe then text " * 3)
    mixed = files.read("mixed.txt").result
    assert mixed.encoding == "utf-8"
    assert mixed.replaced == 6
    assert mixed.message is not None
    assert "U+FFFD" in mixed.message
    # A range ending inside a multi-byte character stops before it.
    cut = files.read("t.txt", max_bytes=2).result
    assert (cut.content, cut.bytes_read, cut.truncated) == ("h", 1, True)
    (root / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    png = files.read("p.png")
    assert png.image is not None
    assert png.result.mime_type == "image/png"


def test_list_hides_state_and_shows_symlinks_unfollowed(
    files: WorkspaceFiles, root: Path, outside: Path
) -> None:
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("1")
    (root / "data" / "sub" / "b.csv").write_text("22")
    (root / "link").symlink_to(outside.parent)
    flat = files.list(".")
    names = {e.name: e.type for e in flat.entries}
    assert ".state" not in names
    assert names == {
        "data": "directory",
        "link": "symlink",
        "outputs": "directory",
        "scripts": "directory",
        "uploads": "directory",
    }
    deep = files.list("data", recursive=True, pattern="*.csv")
    assert [(e.path, e.size) for e in deep.entries] == [("data/a.csv", 1), ("data/sub/b.csv", 2)]
    assert "b.csv (2 B)" in deep.tree
    shallow = files.list("data", recursive=True, max_depth=1)
    assert [e.path for e in shallow.entries] == ["data/a.csv", "data/sub"]


def test_delete_files_symlinks_and_folders(
    files: WorkspaceFiles, root: Path, outside: Path, tmp_path: Path
) -> None:
    (root / "link").symlink_to(outside)
    assert files.delete("link").type == "symlink"
    assert outside.exists()
    (root / "tree" / "a").mkdir(parents=True)
    (root / "tree" / "a" / "f.txt").write_text("x")
    (root / "tree" / "out").symlink_to(outside.parent)
    with pytest.raises(ServerError) as excinfo:
        files.delete("tree")
    refusal(excinfo, ErrorCode.INVALID_INPUT, tmp_path)
    removed = files.delete("tree", recursive=True)
    assert (removed.files_deleted, removed.directories_deleted) == (2, 2)
    assert outside.exists()
    assert not (root / "tree").exists()
    for path, code in (
        (".", ErrorCode.INVALID_INPUT),
        (".state", ErrorCode.PATH_OUTSIDE_WORKSPACE),
    ):
        with pytest.raises(ServerError) as excinfo:
            files.delete(path, recursive=True)
        refusal(excinfo, code, tmp_path)
    with pytest.raises(ServerError) as excinfo:
        files.delete("missing.txt")
    refusal(excinfo, ErrorCode.FILE_NOT_FOUND, tmp_path)


def test_info_counts_files_without_the_state_folder(files: WorkspaceFiles, root: Path) -> None:
    (root / "scripts" / "s.py").write_text("print(1)")
    (root / "outputs" / "o.txt").write_text("12345")
    (root / ".state" / "private.db").write_text("x" * 100)
    info = files.info("inotify")
    assert (info.files, info.total_bytes) == (2, 13)
    by_folder = {f.path: (f.files, f.bytes) for f in info.folders}
    assert by_folder == {"scripts": (1, 8), "outputs": (1, 5), "uploads": (0, 0)}
    assert info.free_bytes > 0
    assert info.max_file_bytes == LIMIT
    assert str(root) not in info.model_dump_json()


def test_upload_names_and_targets(files: WorkspaceFiles, tmp_path: Path) -> None:
    assert upload_filename("C:\\Users\\me\\data.csv") == "data.csv"
    assert upload_filename("../../etc/passwd") == "passwd"
    with pytest.raises(ServerError) as excinfo:
        upload_filename("..")
    refusal(excinfo, ErrorCode.INVALID_INPUT, tmp_path)
    assert files.upload_target("uploads/", "a.csv").relative == "uploads/a.csv"
    assert files.upload_target("uploads", "a.csv").relative == "uploads/a.csv"
    assert files.upload_target("data/new.csv", "ignored.csv").relative == "data/new.csv"
    with pytest.raises(ServerError) as excinfo:
        files.upload_target("../x/", "a.csv")
    refusal(excinfo, ErrorCode.PATH_OUTSIDE_WORKSPACE, tmp_path)


# --- new files --------------------------------------------------------------------------------
@pytest.fixture(params=[True, False], ids=["inotify", "scan"])
def tracker(request: pytest.FixtureRequest, files: WorkspaceFiles) -> Iterator[NewFilesTracker]:
    tracker = NewFilesTracker(files.workspace, use_inotify=request.param)
    tracker.start()
    assert tracker.mode == ("inotify" if request.param else "scan")
    yield tracker
    tracker.close()


def settle(tracker: NewFilesTracker) -> None:
    """The scan compares file times with the mark's: let the clock move past them."""
    if tracker.mode == "scan":
        time.sleep(4 * new_files_module.SCAN_SLACK)


def test_tracker_reports_created_changed_and_moved_in_files(
    tracker: NewFilesTracker, root: Path, tmp_path: Path
) -> None:
    (root / "old.txt").write_text("old")
    (root / "untouched.txt").write_text("same")
    (tmp_path / "elsewhere.txt").write_text("moved")
    settle(tracker)
    mark = tracker.mark()
    (root / "old.txt").write_text("changed")
    (root / "outputs" / "new.csv").write_text("1,2")
    (root / "made" / "deeper").mkdir(parents=True)
    (root / "made" / "deeper" / "f.txt").write_text("in a new folder")
    os.replace(tmp_path / "elsewhere.txt", root / "uploads" / "moved.txt")
    (root / ".state" / "hidden.log").write_text("private")
    (root / "gone.txt").write_text("short-lived")
    (root / "gone.txt").unlink()
    assert tracker.changed_since(mark) == [
        "made/deeper/f.txt",
        "old.txt",
        "outputs/new.csv",
        "uploads/moved.txt",
    ]
    settle(tracker)
    assert tracker.changed_since(tracker.mark()) == []


def test_tracker_falls_back_to_a_scan_when_events_were_dropped(
    files: WorkspaceFiles, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(new_files_module, "JOURNAL_CAP", 3)
    tracker = NewFilesTracker(files.workspace)
    tracker.start()
    try:
        mark = tracker.mark()
        for index in range(6):
            (root / f"f{index}.txt").write_text(str(index))
        assert tracker.changed_since(mark) == [f"f{index}.txt" for index in range(6)]
    finally:
        tracker.close()


def test_quick_answers_only_when_nothing_happened(tracker: NewFilesTracker, root: Path) -> None:
    """The event-loop shortcuts: a mark and an empty answer while no event waits; anything
    else (an event waiting, or scanning) is left to ``mark``/``changed_since``."""
    mark = tracker.quick_mark()
    if tracker.mode == "scan":
        assert mark is None
        return
    assert mark is not None
    assert tracker.quick_unchanged(mark)
    mark = tracker.quick_mark()
    assert mark is not None
    (root / "outputs" / "new.csv").write_text("1,2")
    assert not tracker.quick_unchanged(mark)  # an event waits to be read
    assert tracker.quick_mark() is None
    assert tracker.changed_since(mark) == ["outputs/new.csv"]
    later = tracker.mark()  # the event was read: journaled before this mark
    assert tracker.quick_unchanged(later)
