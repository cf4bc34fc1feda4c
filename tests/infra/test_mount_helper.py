"""The mount helper (``infra/kernels/mount_helper.py``): detached mounts made in a user and
mount namespace of its own, handed over as descriptors; started again if it died.

A server that is not root uses it (``tests/e2e/test_non_root_server.py`` runs one); here
it runs under the test's own user, which works the same way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels.mount_helper import MountHelper, MountHelperError
from tests.sandbox_support import require_bwrap


@pytest.fixture
def helper() -> Iterator[MountHelper]:
    require_bwrap()  # user namespaces, as the sandbox needs them
    made = MountHelper()
    yield made
    made.close()


def test_a_detached_mount_is_a_copy_of_the_folder_read_only_if_asked(
    helper: MountHelper, tmp_path: Path
) -> None:
    (tmp_path / "file.txt").write_text("seen")
    for read_only in (True, False):
        fd = helper.detach(tmp_path, read_only=read_only)
        try:
            view = f"/proc/self/fd/{fd}"
            assert os.listdir(view) == ["file.txt"]
            flags = os.statvfs(view).f_flag
            assert bool(flags & os.ST_RDONLY) == read_only
            assert flags & os.ST_NOSUID
        finally:
            os.close(fd)


def test_this_host_lets_a_nested_user_namespace_attach_them(
    helper: MountHelper, tmp_path: Path
) -> None:
    assert helper.supported(tmp_path) is None


def test_a_missing_path_is_an_error_and_the_helper_serves_on(
    helper: MountHelper, tmp_path: Path
) -> None:
    with pytest.raises(MountHelperError, match="open_tree"):
        helper.detach(tmp_path / "missing", read_only=True)
    os.close(helper.detach(tmp_path, read_only=True))


def test_a_helper_that_died_is_started_again(helper: MountHelper, tmp_path: Path) -> None:
    os.close(helper.detach(tmp_path, read_only=True))
    process = helper._process
    assert process is not None
    process.kill()
    process.wait()
    os.close(helper.detach(tmp_path, read_only=True))
    assert helper._process is not None
    assert helper._process.pid != process.pid
