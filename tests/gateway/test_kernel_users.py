"""Kernel users on a gateway: each start carries ``KERNEL_USERNAME`` (the session's
principal, mapped to a safe user name, or one fixed name); privileged names are refused
before the gateway is asked, and Enterprise Gateway's own refusal is a stable error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from python_mcp_server.errors import KernelUsernameRefusedError
from python_mcp_server.server.services import build_launcher
from tests.gateway.conftest import Replicas, require_venv
from tests.gateway.enterprise_gateway import ENTERPRISE_GATEWAY_VENV, start_enterprise_gateway
from tests.gateway.kernel_gateway import KernelGatewayProcess
from tests.gateway.server_process import ServerProcess, connect
from tests.helpers import call, run, tool_error, wait_gone

ALICE = "alice-token-0123456789"
ROOT = "root-token-0123456789ab"
READ_USER = "import os\nos.environ['KERNEL_USERNAME']"


async def test_a_start_carries_the_principal_as_kernel_user(replicas: Replicas) -> None:
    client = await replicas.open()  # in memory, no auth: the principal "default"
    assert (await run(client, READ_USER))["result"] == "'default'"


async def test_a_fixed_kernel_user_wins(replicas: Replicas) -> None:
    client = await replicas.open(gateway_kernel_username="analyst")
    await call(client, "create_session", session_id="fixed")
    data = await run(client, READ_USER, session_id="fixed")
    assert data["result"] == "'analyst'"


async def test_the_servers_own_kernel_username_is_the_fixed_name(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNEL_USERNAME", "ops")
    client = await replicas.open()
    assert (await run(client, READ_USER))["result"] == "'ops'"


def test_a_privileged_fixed_kernel_user_is_refused_at_start(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="privileged"):
        replicas.settings(gateway_kernel_username="root")
    monkeypatch.setenv("KERNEL_USERNAME", "root")
    with pytest.raises(KernelUsernameRefusedError, match="KERNEL_USERNAME in the server"):
        build_launcher(replicas.settings())


async def test_principals_map_to_safe_names_and_root_is_refused(
    replicas: Replicas, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice@example.com {ALICE}\nroot {ROOT}\n")
    server = ServerProcess(
        replicas,
        tmp_path / "state",
        env={"MCP_AUTH_TOKEN": "", "MCP_AUTH_TOKENS_FILE": str(tokens)},
    )
    try:
        alice = await connect(server, ALICE)
        root = await connect(server, ROOT)
        try:
            await call(alice, "create_session", session_id="mine")
            data = await run(alice, READ_USER, session_id="mine")
            assert data["result"] == "'alice-example-com-ff8d9819'"
            before = replicas.gateway.kernel_ids()
            text = await tool_error(root, "create_session", {"session_id": "mine"})
            assert text.startswith("KERNEL_USERNAME_REFUSED:"), text
            assert "'root'" in text
            assert "MCP_GATEWAY_KERNEL_USERNAME" in text
            text = await tool_error(root, "run_python_code", {"code": "1"})
            assert text.startswith("KERNEL_USERNAME_REFUSED:"), text
            assert replicas.gateway.kernel_ids() == before, "nothing may start for root"
            await call(alice, "delete_session", session_id="mine")
        finally:
            for client in (alice, root):
                await client.__aexit__(None, None, None)
    finally:
        assert server.stop() == 0


@pytest.fixture(scope="module")
def gateway_for_alice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelGatewayProcess]:
    """An Enterprise Gateway that authorizes the user ``alice`` only."""
    require_venv(ENTERPRISE_GATEWAY_VENV)
    started = start_enterprise_gateway(
        tmp_path_factory.mktemp("eg-alice"), env={"EG_AUTHORIZED_USERS": "alice"}
    )
    try:
        yield started
    finally:
        started.stop()


async def test_enterprise_gateway_refusing_the_user_is_gateway_forbidden(
    gateway_for_alice: KernelGatewayProcess, tmp_path: Path
) -> None:
    processes = gateway_for_alice.kernel_processes()
    group = Replicas(gateway_for_alice, "refusals", tmp_path)
    try:
        refused = await group.open()  # kernels for "default": not an authorized user
        text = await tool_error(refused, "create_session", {"session_id": "work"})
        assert text.startswith("GATEWAY_FORBIDDEN:"), text
        assert "'default'" in text
        assert "authorized to start kernel" in text
        assert "{" not in text, "the gateway's answer is quoted, not dumped"
        assert gateway_for_alice.kernel_ids() == set()

        allowed = await group.open(gateway_kernel_username="alice")
        await call(allowed, "create_session", session_id="work")
        assert (await run(allowed, READ_USER, session_id="work"))["result"] == "'alice'"
        await call(allowed, "delete_session", session_id="work")
    finally:
        for client in list(group.clients):
            await group.close(client)
    assert gateway_for_alice.kernel_ids() == set()
    assert not wait_gone(gateway_for_alice.kernel_processes() - processes)
