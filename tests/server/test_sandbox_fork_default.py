"""Forked sandboxed kernels are the default where they can work (MCP_SANDBOX_FORK).

A root server gets the forking launcher without being asked; ``MCP_SANDBOX_FORK=false``
turns it off. A server that is not root cannot fork sandboxed kernels (no kernel user to
run the template as): it says so at info when forking was only the default, at warning
when it was asked for. Not being root cannot be had for real in a test run as root, so
that one fact is patched; everything else (bubblewrap's probe, the launcher) is real. A
template that cannot start on a host is tried a few times, then kernels stop waiting
for one.
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
from tests.sandbox_support import require_bwrap

WHY = "MCP_SANDBOX_FORK needs a root server"


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


@pytest.mark.parametrize(("asked", "level"), [(False, logging.INFO), (True, logging.WARNING)])
async def test_a_server_that_is_not_root_says_why_at_the_level_asked_for(
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    asked: bool,
    level: int,
) -> None:
    monkeypatch.setattr(kernel_isolation, "server_is_root", lambda: False)
    chosen = settings(workspace, sandbox_fork=True) if asked else settings(workspace)
    with caplog.at_level(logging.DEBUG, logger=kernel_isolation.__name__):
        launcher = await built(chosen)
    assert not isinstance(launcher, SandboxForkLauncher)
    (record,) = [r for r in caplog.records if WHY in r.getMessage()]
    assert record.levelno == level


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
