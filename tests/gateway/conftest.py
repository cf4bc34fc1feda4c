"""Gateway fixtures: a real gateway per test run, servers (replicas) pointed at it.

Tests taking ``gateway`` (or ``replicas``) run twice: on a Jupyter Kernel Gateway and on a
Jupyter Enterprise Gateway, each started once per test worker (pytest groups the tests by
gateway, so one runs at a time). The gateways come from their own venvs
(``.gateway-venv``, ``.gateway-venv-eg``), created from the registry on first use. If one
cannot be created its tests are skipped with the command that creates it, except in CI
(``CI`` or ``PMCP_REQUIRE_GATEWAY=1``, which ``.ci/run`` sets), where that is a failure.

Each test gets its own gateway namespace, so its session ids name kernels no other test
sees. Servers stopping only detach from their sessions (other replicas may use them), so
at teardown every kernel left on the gateway must be a session some server still held;
those are then deleted and their processes must end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.gateway import session_kernel_id
from python_mcp_server.server.app import build_server
from python_mcp_server.settings import Settings
from tests.gateway.enterprise_gateway import ENTERPRISE_GATEWAY_VENV, start_enterprise_gateway
from tests.gateway.kernel_gateway import (
    KERNEL_GATEWAY_VENV,
    GatewayVenv,
    KernelGatewayProcess,
    start_kernel_gateway,
)
from tests.helpers import NATIVE_TOOLSETS, wait_gone


def gateway_required() -> bool:
    """In CI a missing gateway is a failure, never a skip."""
    flags = (os.environ.get("CI", ""), os.environ.get("PMCP_REQUIRE_GATEWAY", ""))
    return any(flag.lower() in {"1", "true", "yes"} for flag in flags)


def require_venv(venv: GatewayVenv) -> None:
    """Make the gateway's venv, or skip (fail in CI) saying how to make it."""
    command, problem = venv.ensure()
    if command is None:
        message = (
            f"no gateway venv at {venv.path} and it could not be created ({problem}); "
            f"create it with: {venv.create_hint}"
        )
        if gateway_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


#: Each gateway the suite runs on: its venv and how to start it in a folder.
GATEWAYS: dict[str, tuple[GatewayVenv, Callable[[Path], KernelGatewayProcess]]] = {
    "kernel-gateway": (KERNEL_GATEWAY_VENV, start_kernel_gateway),
    "enterprise-gateway": (ENTERPRISE_GATEWAY_VENV, start_enterprise_gateway),
}


@pytest.fixture(scope="session", params=list(GATEWAYS))
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KernelGatewayProcess]:
    """A running Kernel Gateway, then (a second run of the tests) an Enterprise Gateway."""
    venv, start = GATEWAYS[request.param]
    require_venv(venv)
    running = start(tmp_path_factory.mktemp(request.param))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def gateway_namespace() -> str:
    return f"test-{uuid.uuid4().hex}"


class Replicas:
    """python-mcp-server instances (in memory) sharing one gateway and one namespace."""

    def __init__(
        self,
        gateway: KernelGatewayProcess,
        namespace: str,
        state_root: Path,
    ) -> None:
        self.gateway = gateway
        self.namespace = namespace
        self._state_root = state_root
        self._opened = 0
        self.clients: list[Client[Any]] = []

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "workspace_dir": self.gateway.workspace,
            "state_dir": self._state_root / f"replica-{self._opened}",
            "gateway_url": self.gateway.url,
            "gateway_token": self.gateway.token,
            "gateway_namespace": self.namespace,
            "session_idle_timeout": 0,
            "execution_timeout": 20,
            "interrupt_grace": 2,
            "toolsets": NATIVE_TOOLSETS,
        }
        values.update(overrides)
        return Settings(**values)

    async def open(self, **overrides: Any) -> Client[Any]:
        """Start one more server on the gateway and connect an MCP client to it."""
        client: Client[Any] = Client(build_server(self.settings(**overrides)))
        self._opened += 1
        await client.__aenter__()
        self.clients.append(client)
        return client

    async def close(self, client: Client[Any]) -> None:
        """Stop one server (it detaches from its sessions)."""
        self.clients.remove(client)
        await client.__aexit__(None, None, None)

    def kernel_id(self, session_id: str) -> str:
        return session_kernel_id(self.namespace, session_id)

    async def sessions_held(self) -> set[str]:
        held: set[str] = set()
        for client in self.clients:
            listing = await client.call_tool("list_sessions", {})
            assert listing.structured_content is not None
            held |= {s["session_id"] for s in listing.structured_content["sessions"]}
        return held


@pytest.fixture
async def replicas(
    gateway: KernelGatewayProcess, gateway_namespace: str, tmp_path: Path
) -> AsyncIterator[Replicas]:
    before = gateway.kernel_ids()
    processes_before = gateway.kernel_processes()
    group = Replicas(gateway, gateway_namespace, tmp_path)
    try:
        yield group
        held = await group.sessions_held()
    finally:
        for client in list(group.clients):
            await group.close(client)
    left = gateway.kernel_ids() - before
    for kernel_id in left:
        gateway.delete_kernel(kernel_id)
    strays = left - {group.kernel_id(name) for name in held}
    assert not strays, f"kernels on the gateway that no session holds: {strays}"
    leaked = wait_gone(gateway.kernel_processes() - processes_before)
    assert not leaked, f"kernel processes left on the gateway: {leaked}"


@pytest.fixture
async def gateway_client(replicas: Replicas) -> Client[Any]:
    """One server whose kernels run on the gateway."""
    return await replicas.open()
