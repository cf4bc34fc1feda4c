"""Fixtures of the infrastructure tests: a template launcher whose kernels all end with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels.limits import MIB, ResourceLimits
from python_mcp_server.infra.kernels.template_launcher import TemplateLauncher
from tests.helpers import kernel_children, wait_gone


@pytest.fixture
async def launcher(workspace: Path) -> AsyncIterator[TemplateLauncher]:
    """A template launcher (1 GiB per kernel); closed after the test, every kernel gone."""
    before = kernel_children()
    launcher = TemplateLauncher(
        workspace / ".state", ResourceLimits(memory_bytes=1024 * MIB), start_timeout=120
    )
    yield launcher
    await launcher.aclose()
    assert not wait_gone(kernel_children() - before)
