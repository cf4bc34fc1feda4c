"""A real full disk: the workspace (and, in one test, the state folder) on a 2 MiB tmpfs
mounted for the test. Calls get DISK_FULL, never a hang, a dead reader or INTERNAL_ERROR;
the session keeps its variables; health_check says the disk is full."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import call, run, tool_error

#: Kernel code that fills its file system to the last byte (os.write: no buffering).
FILL = (
    "import os\n"
    "fd = os.open('filler.bin', os.O_WRONLY | os.O_CREAT)\n"
    "for size in (1 << 20, 4096, 1):\n"
    "    while True:\n"
    "        try:\n"
    "            os.write(fd, b'x' * size)\n"
    "        except OSError as exc:\n"
    "            last = exc\n"
    "            break\n"
    "os.close(fd)\n"
    "print(last.errno)\n"
)
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, mounted for this test and unmounted after the server stopped."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture
def workspace(small_disk: Path) -> Path:
    path = small_disk / "ws"
    path.mkdir()
    return path


@pytest.fixture
def settings_overrides(
    request: pytest.FixtureRequest, tmp_path: Path, small_disk: Path
) -> dict[str, Any]:
    values: dict[str, Any] = {"max_output_chars": 1000, "venvs_dir": tmp_path / "venvs"}
    if getattr(request, "param", None) == "state-on-disk":
        values.update(kernel_pool_size=0, state_dir=small_disk / "state")
    return values


async def health(client: Client[Any]) -> dict[str, Any]:
    return await call(client, "health_check")


async def test_a_full_workspace_gives_disk_full_and_the_session_lives(
    client: Client[Any], workspace: Path
) -> None:
    assert (await run(client, "kept = 'still here'"))["status"] == "ok"
    filled = await run(client, FILL)
    assert filled["stdout"] == "28\n"
    assert (await health(client))["disk"]["full"] is True

    spilled = await run(client, "print('z' * 5000)")
    assert spilled["status"] == "error"
    assert spilled["error"]["code"] == "DISK_FULL"
    assert spilled["kernel_restarted"] is False
    assert spilled["stdout"] == "z" * 750 + "\n[... 4001 characters cut ...]\n" + "z" * 249 + "\n"
    assert "disk is full" in spilled["message"]

    plotted = await run(client, PLOT)
    assert plotted["status"] == "error"
    assert plotted["error"]["code"] == "DISK_FULL"

    user = await run(client, "open('more.bin', 'wb').write(b'y' * 100_000)")
    assert user["error"]["code"] == "DISK_FULL"

    assert (await run(client, "kept"))["result"] == "'still here'"
    report = await health(client)
    assert report["status"] == "degraded"
    assert report["disk"]["output_write_failures"] >= 3
    assert any("full" in problem for problem in report["problems"])
    # The state folder lives elsewhere by default: new sessions still start.
    created = await call(client, "create_session", session_id="second")
    assert created["session"]["session_id"] == "second"

    os.unlink(workspace / "filler.bin")
    assert (await health(client))["disk"]["full"] is False
    again = await run(client, "print('z' * 5000)")
    assert again["status"] == "ok"
    assert again["stdout_path"] is not None


@pytest.mark.parametrize("settings_overrides", ["state-on-disk"], indirect=True)
async def test_a_full_state_disk_gives_disk_full_not_internal_error(
    client: Client[Any],
) -> None:
    """This server keeps its state on the small disk too (not the default)."""
    assert (await run(client, "1"))["status"] == "ok"
    filled = await run(client, FILL)
    assert filled["stdout"] == "28\n"
    text = await tool_error(client, "create_session", {"session_id": "late"})
    assert text.startswith("DISK_FULL:"), text
    for _ in range(3):
        await run(client, "'recorded?'")
    report = await health(client)
    assert report["disk"]["full"] is True
    assert report["disk"]["history_write_failures"] >= 1
    assert (await run(client, "2 + 2"))["result"] == "4"
