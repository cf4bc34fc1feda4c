"""Forked sandboxed kernels are the default where they can work (MCP_SANDBOX_FORK).

A root server gets the forking launcher without being asked, and so does a server that is
not root (the real command, run as a uid of no user: ``tests/nonroot_support.py``);
``MCP_SANDBOX_FORK=false`` turns it off for either. A template that cannot start on a
host is tried a few times, then kernels stop waiting for one.
"""

from __future__ import annotations

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
from tests.nonroot_support import TOKEN, non_root_server
from tests.sandbox_support import require_bwrap


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


def settings(workspace: Path, **values: object) -> Settings:
    return Settings(workspace_dir=workspace, sandbox="bwrap", **values)


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


@pytest.mark.parametrize(("sandbox_fork", "mode"), [(None, "fork"), ("false", "start")])
async def test_a_server_that_is_not_root_forks_them_too_unless_told_not_to(
    tmp_path: Path, sandbox_fork: str | None, mode: str
) -> None:
    env = {"MCP_SANDBOX": "bwrap", "MCP_KERNEL_PRELOAD": "json", "MCP_KERNEL_POOL_SIZE": "0"}
    if sandbox_fork is not None:
        env["MCP_SANDBOX_FORK"] = sandbox_fork
    with non_root_server(env, tmp_path) as server:
        async with Client(server.mcp_url, auth=TOKEN, timeout=120) as client:
            assert (await call(client, "health_check"))["preload"]["mode"] == mode
            await call(client, "create_session", session_id="a")
            origin = "'\"sandboxed\": true' in open('/proc/self/cmdline').read()"
            forked = (await run(client, origin, session_id="a"))["result"]
            assert forked == str(mode == "fork")
            await call(client, "delete_session", session_id="a")


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
