"""The descriptor resolver against links planted before and during use, and rename races.

A second thread plays the kernel: it swaps folders for symlinks (and renames links) in a
tight loop while the server side resolves, reads and writes. Nothing may land outside the
workspace, and every failure must be a refusal with a stable code, never an OSError.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from python_mcp_server.core.packages.venv_records import METADATA_FILE
from python_mcp_server.core.workspace.dirfd import DirectoryRoot
from python_mcp_server.core.workspace.files import WorkspaceFiles
from python_mcp_server.core.workspace.outputs import (
    TAIL_BYTES,
    OutputFiles,
    OutputLimits,
    SpillFile,
)
from python_mcp_server.core.workspace.resolver import Workspace, WorkspaceConfig
from python_mcp_server.errors import ErrorCode, ServerError

ROUNDS = 600
#: Codes a refused path may carry; INTERNAL_ERROR is never one of them.
REFUSALS = {
    ErrorCode.PATH_OUTSIDE_WORKSPACE,
    ErrorCode.FILE_NOT_FOUND,
    ErrorCode.FILE_EXISTS,
    ErrorCode.INVALID_INPUT,
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    (path / "outputs").mkdir(parents=True)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def workspace(root: Path, tmp_path: Path) -> Workspace:
    return Workspace(WorkspaceConfig(root, tmp_path / "state", 1 << 20))


def _racer(step: Callable[[], None]) -> Iterator[None]:
    """Run ``step`` in a loop on another thread until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                step()
            except OSError:
                pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.fixture
def swap_outputs(root: Path, outside: Path) -> Iterator[None]:
    """The kernel's trick: outputs/ is a folder one moment and a link outside the next."""

    def step() -> None:
        os.rename(root / "outputs", root / "outputs.real")
        os.symlink(outside, root / "outputs")
        os.unlink(root / "outputs")
        os.rename(root / "outputs.real", root / "outputs")

    yield from _racer(step)


def test_spill_files_and_images_never_land_outside_while_outputs_is_swapped(
    workspace: Workspace, outside: Path, swap_outputs: None
) -> None:
    files = OutputFiles(workspace, OutputLimits(1 << 30, 1 << 30))
    saved = 0
    codes: set[ErrorCode] = set()
    for index in range(ROUNDS):
        budget = files.budget(None)
        spill = SpillFile(files, f"run{index}-stdout.txt", budget)
        spill.write(b"kernel-chosen bytes\n" * 10)
        spill.close()
        try:
            files.save(f"run{index}.png", b"\x89PNG not really", budget)
            saved += 1
        except ServerError as exc:
            codes.add(exc.code)
        if spill.error is not None:
            codes.add(spill.error.code)
    assert list(outside.iterdir()) == []
    assert codes <= REFUSALS
    assert saved > 0  # the race did not simply refuse everything


def test_file_tools_never_touch_outside_while_a_folder_is_swapped(
    workspace: Workspace, root: Path, outside: Path, swap_outputs: None
) -> None:
    (outside / "secret.txt").write_text("secret")
    files = WorkspaceFiles(workspace)
    codes: set[ErrorCode] = set()
    for index in range(ROUNDS):
        name = f"outputs/w{index}.txt"
        for action in (
            lambda: files.write(name, "x"),  # noqa: B023 - called at once
            lambda: files.read("outputs/secret.txt"),
            lambda: files.list("outputs"),
            lambda: files.delete("outputs/secret.txt"),
        ):
            try:
                action()
            except ServerError as exc:
                codes.add(exc.code)
    assert codes <= REFUSALS
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


def test_a_link_renamed_while_being_resolved_is_a_clean_refusal(
    workspace: Workspace, root: Path
) -> None:
    """realpath reads links one at a time: a link renamed away in between raised
    FileNotFoundError from inside the resolver (an internal error about 1 call in 100)."""
    (root / "real").mkdir()
    (root / "real" / "f.txt").write_text("data")
    (root / "a").symlink_to("real")
    files = WorkspaceFiles(workspace)

    def step() -> None:
        os.rename(root / "a", root / "b")
        os.rename(root / "b", root / "a")

    codes: set[ErrorCode] = set()
    racer = _racer(step)
    next(racer)
    try:
        for _ in range(ROUNDS * 5):
            for path in ("a/f.txt", "a", "b/f.txt"):
                try:
                    files.read(path) if path.endswith(".txt") else files.list(path)
                except ServerError as exc:
                    codes.add(exc.code)
    finally:
        next(racer, None)
    assert codes <= REFUSALS


def test_writes_into_an_environment_never_follow_a_planted_link(
    tmp_path: Path, outside: Path
) -> None:
    venvs = tmp_path / "venvs"
    (venvs / "env").mkdir(parents=True)
    target = outside / "victim.json"
    target.write_text("untouched")
    (venvs / "env" / METADATA_FILE).symlink_to(target)
    directory = DirectoryRoot(venvs)
    directory.replace_file(("env", METADATA_FILE), "'metadata'", b'{"description": "x"}')
    assert target.read_text() == "untouched"
    assert not (venvs / "env" / METADATA_FILE).is_symlink()
    (venvs / "env" / "lib").symlink_to(outside)
    with pytest.raises(ServerError) as excinfo:
        directory.replace_file(("env", "lib", "link.pth"), "'link file'", b"import os")
    assert excinfo.value.code is ErrorCode.PATH_OUTSIDE_WORKSPACE
    with pytest.raises(ServerError) as excinfo:
        directory.read_small(("env", "lib", "victim.json"), "'x'", limit=100)
    assert excinfo.value.code is ErrorCode.PATH_OUTSIDE_WORKSPACE
    assert sorted(p.name for p in outside.iterdir()) == ["victim.json"]


class _Session:
    """Stands for a session: budgets are kept per session object."""


def test_a_capped_spill_keeps_head_and_tail_and_says_so(workspace: Workspace, root: Path) -> None:
    files = OutputFiles(workspace, OutputLimits(64 * 1024, 100 * 1024))
    owner = _Session()
    first = SpillFile(files, "one.txt", files.budget(owner))
    first.write(b"H" * 64 * 1024 + b"M" * 500_000 + b"T" * TAIL_BYTES)
    first.close()
    data = (root / "outputs" / "one.txt").read_bytes()
    assert data.startswith(b"H" * 64 * 1024)
    assert data.endswith(b"T" * TAIL_BYTES)
    assert b"[... 500000 bytes dropped" in data
    note = first.note()
    assert note is not None
    assert "MCP_MAX_SPILL_BYTES_PER_CALL" in note
    second = SpillFile(files, "two.txt", files.budget(owner))
    second.write(b"x" * 64 * 1024)
    second.close()
    note = second.note()
    assert note is not None
    assert "MCP_MAX_SPILL_BYTES_PER_SESSION" in note
    assert (root / "outputs" / "two.txt").read_bytes().startswith(b"x" * (36 * 1024))
    # Another session has its own budget.
    third = SpillFile(files, "three.txt", files.budget(_Session()))
    third.write(b"y" * 1000)
    third.close()
    assert third.note() is None
