"""Shared fixtures: real settings in a temporary workspace, real kernels, the real protocol.

``server``/``client`` give the in-memory fastmcp Client over a server built exactly as the
command builds it; every test that starts kernels also checks that none is left running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

#: Where the whole run (each xdist worker) keeps default state folders: set before anything
#: below can build a server, so nothing a test run does, inside a test or not, writes the
#: user's own ~/.local/state (each test narrows it further: ``state_home``).
RUN_STATE_HOME = tempfile.mkdtemp(prefix="pytest-state-home-")
os.environ["XDG_STATE_HOME"] = RUN_STATE_HOME

from fastmcp import Client, FastMCP  # noqa: E402

from python_mcp_server.server.app import build_server  # noqa: E402
from python_mcp_server.server.services import Services, build_services  # noqa: E402
from python_mcp_server.settings import Settings  # noqa: E402
from tests.helpers import NATIVE_TOOLSETS, kernel_children, leak_report, wait_gone  # noqa: E402
from tests.sandbox_support import fork_settings, forking  # noqa: E402

os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")

#: Fixtures of real services (tests/services/), available to every test.
pytest_plugins = ["tests.services.nginx", "tests.services.postgres", "tests.services.redis"]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(RUN_STATE_HOME, ignore_errors=True)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Make the gateways' own venvs before any test runs, when gateway tests are selected.

    Creating them installs from the registry (a minute or two on a fresh machine): done
    here, outside every test's timeout, rather than in the first gateway test's setup
    (where the workers waiting on the same venv would time out too).
    """
    if not any(item.nodeid.startswith("tests/gateway/") for item in session.items):
        return
    from tests.gateway.enterprise_gateway import ENTERPRISE_GATEWAY_VENV
    from tests.gateway.kernel_gateway import KERNEL_GATEWAY_VENV

    for venv in (KERNEL_GATEWAY_VENV, ENTERPRISE_GATEWAY_VENV):
        venv.ensure()  # a failure is reported by the gateway fixture, with the reason


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default state folder lives under $XDG_STATE_HOME: keep it in the test's tmp."""
    path = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(path))
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its server."""
    return {}


@pytest.fixture
def sandbox_forking() -> bool:
    """Whether sandboxed kernels of this test's server are forked from a template (given
    the suite's light preload); the sandbox suites parametrize it (``BOTH_KERNEL_ORIGINS``)."""
    return forking()


@pytest.fixture
def settings(
    workspace: Path, settings_overrides: dict[str, Any], sandbox_forking: bool
) -> Settings:
    values: dict[str, Any] = {
        "workspace_dir": workspace,
        "kernel_pool_size": 1,
        "kernel_pool_burst": 0,  # one pooled kernel even where kernels fork
        "session_idle_timeout": 0,
        "execution_timeout": 20,
        "interrupt_grace": 2,
        # Plain kernels unless a test asks for the preload: it costs seconds per
        # sandboxed kernel on a loaded machine (tests/server/test_preload.py covers it).
        "kernel_preload": "none",
        # every native tool: tests call opt-in ones (toolset tests choose their own)
        "toolsets": NATIVE_TOOLSETS,
    }
    values.update(settings_overrides)
    return Settings(**fork_settings(values, sandbox_forking))


@pytest.fixture
def services(settings: Settings) -> Services:
    return build_services(settings)


@pytest.fixture
def server(settings: Settings, services: Services) -> FastMCP:
    return build_server(settings, services)


@pytest.fixture
async def client(server: FastMCP) -> AsyncIterator[Client[Any]]:
    since, before = time.time(), kernel_children()
    async with Client(server) as connected:
        yield connected
    leaked = wait_gone(kernel_children() - before)
    assert not leaked, (
        f"kernels left running after the server stopped: {leak_report(leaked, since)}"
    )


@pytest.fixture
async def sync_client(server: FastMCP) -> AsyncIterator[Client[Any]]:
    """A client without the tasks extension (the 2025 handshake): every call is answered
    synchronously, as for MCP SDK 1.x clients."""
    since, before = time.time(), kernel_children()
    async with Client(server, mode="legacy") as connected:
        yield connected
    leaked = wait_gone(kernel_children() - before)
    assert not leaked, (
        f"kernels left running after the server stopped: {leak_report(leaked, since)}"
    )


@pytest.fixture
def no_kernel_leak() -> Iterator[None]:
    """For core tests: fail if the test leaves kernel processes behind."""
    since, before = time.time(), kernel_children()
    yield
    leaked = wait_gone(kernel_children() - before)
    assert not leaked, f"kernels left running: {leak_report(leaked, since)}"
