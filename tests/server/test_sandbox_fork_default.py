"""Forked sandboxed kernels are the default where they can work (MCP_SANDBOX_FORK).

A root server gets the forking launcher without being asked; ``MCP_SANDBOX_FORK=false``
turns it off. A server that is not root cannot fork sandboxed kernels (no kernel user to
run the template as): it says so at info when forking was only the default, at warning
when it was asked for. Not being root cannot be had for real in a test run as root, so
that one fact is patched; everything else (bubblewrap's probe, the launcher) is real.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels.sandbox import BwrapLauncher
from python_mcp_server.infra.kernels.sandbox_fork import SandboxForkLauncher
from python_mcp_server.server import kernel_isolation
from python_mcp_server.settings import Settings
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
