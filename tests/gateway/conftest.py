"""Gateway fixtures: one real Kernel Gateway per test run, servers (replicas) pointed at it.

The gateway comes from ``.gateway-venv``, created from the registry on first use. If it
cannot be created the tests are skipped with the command that creates it, except in CI
(``CI`` or ``PMCP_REQUIRE_GATEWAY=1``, which ``.ci/run`` sets), where that is a failure.

Each test gets its own gateway namespace, so its session ids name kernels no other test
sees. Servers stopping only detach from their sessions (other replicas may use them), so
at teardown every kernel left on the gateway must be a session some server still held;
those are then deleted and their processes must end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.gateway import session_kernel_id
from python_mcp_server.server.app import build_server
from python_mcp_server.settings import Settings
from tests.gateway.kernel_gateway import (
    CREATE_VENV,
    GATEWAY_VENV,
    KernelGatewayProcess,
    ensure_gateway_venv,
    start_kernel_gateway,
)
from tests.helpers import NATIVE_TOOLSETS, wait_gone


def gateway_required() -> bool:
    """In CI a missing gateway is a failure, never a skip."""
    flags = (os.environ.get("CI", ""), os.environ.get("PMCP_REQUIRE_GATEWAY", ""))
    return any(flag.lower() in {"1", "true", "yes"} for flag in flags)


@pytest.fixture(scope="session")
def kernel_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelGatewayProcess]:
    command, problem = ensure_gateway_venv()
    if command is None:
        message = (
            f"no Kernel Gateway venv at {GATEWAY_VENV} and it could not be created "
            f"({problem}); create it with: {CREATE_VENV}"
        )
        if gateway_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    gateway = start_kernel_gateway(tmp_path_factory.mktemp("kernel-gateway"))
    try:
        yield gateway
    finally:
        gateway.stop()


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
    kernel_gateway: KernelGatewayProcess, gateway_namespace: str, tmp_path: Path
) -> AsyncIterator[Replicas]:
    before = kernel_gateway.kernel_ids()
    processes_before = kernel_gateway.kernel_processes()
    group = Replicas(kernel_gateway, gateway_namespace, tmp_path)
    try:
        yield group
        held = await group.sessions_held()
    finally:
        for client in list(group.clients):
            await group.close(client)
    left = kernel_gateway.kernel_ids() - before
    for kernel_id in left:
        kernel_gateway.delete_kernel(kernel_id)
    strays = left - {group.kernel_id(name) for name in held}
    assert not strays, f"kernels on the gateway that no session holds: {strays}"
    leaked = wait_gone(kernel_gateway.kernel_processes() - processes_before)
    assert not leaked, f"kernel processes left on the gateway: {leaked}"


@pytest.fixture
async def gateway_client(replicas: Replicas) -> Client[Any]:
    """One server whose kernels run on the gateway."""
    return await replicas.open()
