"""Shutdown is resilient: a service that fails to stop does not leave kernels behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_mcp_server.server.services import build_services
from python_mcp_server.settings import Settings
from tests.helpers import kernel_children, wait_gone


async def test_a_failing_shutdown_step_still_ends_every_kernel(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    services = build_services(Settings(workspace_dir=workspace, session_idle_timeout=0))
    await services.start()
    await services.sessions.create("one")
    await services.sessions.create("two")
    kernels = kernel_children()
    assert kernels

    async def broken() -> None:
        raise RuntimeError("disk went away")

    # A fault that cannot be produced on demand: the environments service failing to stop.
    services.environments.aclose = broken  # type: ignore[method-assign]
    await services.aclose()
    assert not wait_gone(kernels)
    assert "shutdown step" in caplog.text
    assert "disk went away" in caplog.text
