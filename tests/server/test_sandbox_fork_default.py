"""Forked sandboxed kernels are the default where they can work (MCP_SANDBOX_FORK).

A root server gets the forking launcher without being asked, and so does a server that is
not root (the real command, run as a uid of no user: ``tests/nonroot_support.py``);
``MCP_SANDBOX_FORK=false`` turns it off for either. A template that cannot start on a
host is tried a few times, then kernels stop waiting for one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.sandbox import BwrapLauncher
from python_mcp_server.infra.kernels.sandbox_fork import START_FAILURES_LIMIT, SandboxForkLauncher
from python_mcp_server.server import kernel_isolation
from python_mcp_server.server.services import Services
from python_mcp_server.settings import Settings
from tests.helpers import call, run
from tests.nonroot_support import SERVER_UID, TOKEN, non_root_server
from tests.sandbox_support import require_bwrap


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


def settings(workspace: Path, **values: object) -> Settings:
    return Settings(workspace_dir=workspace, sandbox="bwrap", **values)


#: A kernel's uid, rlimits (memory, file size, processes), /tmp and /dev/shm sizes, and
#: the errno of a new user namespace.
KERNEL_LIMITS = """\
import ctypes, json, os, resource
names = ('RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NPROC')
sizes = [os.statvfs(p).f_blocks * os.statvfs(p).f_frsize for p in ('/tmp', '/dev/shm')]
libc = ctypes.CDLL(None, use_errno=True)
refused = libc.unshare(0x10000000) == -1 and ctypes.get_errno()
print(json.dumps([os.getuid(), [resource.getrlimit(getattr(resource, n)) for n in names],
                  sizes, refused]))
"""


async def built(chosen: Settings) -> BwrapLauncher:
    launcher = kernel_isolation.build_local_launcher(chosen)
    assert isinstance(launcher, BwrapLauncher)
    await launcher.aclose()
    return launcher


async def test_a_root_server_forks_sandboxed_kernels_unless_told_not_to(workspace: Path) -> None:
    assert isinstance(await built(settings(workspace)), SandboxForkLauncher)
    off = await built(settings(workspace, sandbox_fork=False))
    assert not isinstance(off, SandboxForkLauncher)
    assert off.preload_mode == "start"


async def test_a_server_that_is_not_root_forks_them_too_under_the_same_limits(
    tmp_path: Path,
) -> None:
    """Its default forks (a deeper pool with it); ``MCP_SANDBOX_FORK=false`` starts
    kernels with bubblewrap, as such a server did before. Either way a kernel has the same
    uid, rlimits (the process limit in its own user namespace), tmpfs sizes and no user
    namespaces (a forked one also sets its own ``max_user_namespaces`` to 0, where
    bubblewrap's ``--disable-userns`` uses up its parent's)."""
    env = {
        "MCP_SANDBOX": "bwrap",
        "MCP_KERNEL_PRELOAD": "json",
        "MCP_KERNEL_POOL_SIZE": "1",
        "MCP_KERNEL_POOL_BURST": "2",
    }
    seen = {}
    for sandbox_fork, mode, depth in ((None, "fork", 2), ("false", "start", 1)):
        chosen = env if sandbox_fork is None else {**env, "MCP_SANDBOX_FORK": sandbox_fork}
        with non_root_server(chosen, tmp_path) as server:
            async with Client(server.mcp_url, auth=TOKEN, timeout=120) as client:
                health = await call(client, "health_check")
                assert health["preload"]["mode"] == mode
                assert health["metrics"]["kernel_pool_depth"] == depth
                await call(client, "create_session", session_id="a")
                origin = "'\"sandboxed\": true' in open('/proc/self/cmdline').read()"
                forked = (await run(client, origin, session_id="a"))["result"]
                assert forked == str(mode == "fork")
                seen[mode] = (await run(client, KERNEL_LIMITS, session_id="a"))["stdout"]
                await call(client, "delete_session", session_id="a")
    assert seen["fork"] == seen["start"]
    uid, limits, _, refused = json.loads(seen["fork"])
    assert uid == SERVER_UID
    assert limits[2] == [256, 256]  # MCP_MAX_KERNEL_PROCESSES, the default
    assert refused == 1  # EPERM


@pytest.mark.parametrize(
    "settings_overrides",
    [{"sandbox": "bwrap", "kernel_preload": "json", "kernel_pool_size": 0}],
)
async def test_a_template_that_cannot_start_here_is_given_up_after_a_few_tries(
    client: Client[Any], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    assert launcher._template_filter is not None
    # A program the kernel refuses: every template's sandbox fails as it is set up.
    launcher._template_filter.write_bytes(bytes(8))
    with caplog.at_level(logging.WARNING, logger="python_mcp_server.infra.kernels"):
        for name in ("a", "b", "c", "d"):
            await call(client, "create_session", session_id=name)
            assert (await run(client, "1 + 1", session_id=name))["result"] == "2"
    tries = [r for r in caplog.records if "starting plain kernels" in r.getMessage()]
    assert len(tries) == START_FAILURES_LIMIT  # the fourth session did not try
    assert "until packages change" in tries[-1].getMessage()
    assert launcher.forked == 0
    health = await call(client, "health_check")
    assert "does not start here" in health["preload"]["unforked"]["default"]
