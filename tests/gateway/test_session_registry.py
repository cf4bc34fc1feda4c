"""The session registry: replicas on one gateway sharing one PostgreSQL list the same
sessions, per principal, and a database that cannot be reached never yields a guess."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.gateway.conftest import Replicas
from tests.gateway.server_process import ServerProcess, connect
from tests.helpers import call, run, tool_error
from tests.services.postgres import PostgresServer

ALICE = "alice-registry-token-0123"
BOB = "bob-registry-token-456789"


def listed(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["session_id"]: s for s in listing["sessions"]}


async def test_create_via_a_list_via_b_delete_via_b(replicas: Replicas, postgres_url: str) -> None:
    a = await replicas.open(database_url=postgres_url)
    b = await replicas.open(database_url=postgres_url)
    made = await call(a, "create_session", session_id="shared", description="for both")
    assert made["session"]["kernel_id"] == replicas.kernel_id("shared")

    seen = listed(await call(b, "list_sessions"))["shared"]
    assert seen["kernel_id"] == replicas.kernel_id("shared")
    assert seen["description"] == "for both"
    assert seen["venv_name"] is None
    assert seen["status"] == "idle"
    own = listed(await call(a, "list_sessions"))["shared"]
    assert own["created_at"] == seen["created_at"]

    # Use through A is written off the response path: B's list shows it soon after.
    await run(a, "value = 1", session_id="shared")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while listed(await call(b, "list_sessions"))["shared"]["last_used"] == seen["last_used"]:
        assert loop.time() < deadline, "the use through A never reached the registry"
        await asyncio.sleep(0.1)

    await call(b, "delete_session", session_id="shared")
    assert "shared" not in listed(await call(a, "list_sessions"))
    assert "shared" not in listed(await call(b, "list_sessions"))
    assert replicas.gateway.kernel(replicas.kernel_id("shared")) is None
    text = await tool_error(a, "run_python_code", {"code": "value", "session_id": "shared"})
    assert text.startswith("SESSION_NOT_FOUND:")


async def test_a_session_whose_kernel_was_culled_leaves_the_list(
    replicas: Replicas, postgres_url: str
) -> None:
    a = await replicas.open(database_url=postgres_url)
    b = await replicas.open(database_url=postgres_url)
    await call(a, "create_session", session_id="culled")
    replicas.gateway.delete_kernel(replicas.kernel_id("culled"))  # as the gateway's culler
    assert "culled" not in listed(await call(b, "list_sessions"))
    # The id is free again: a new session of that name starts on a fresh kernel.
    await call(b, "create_session", session_id="culled")
    assert (await run(a, "1 + 1", session_id="culled"))["result"] == "2"


async def test_without_the_database_no_session_is_created(
    own_postgres: PostgresServer, replicas: Replicas
) -> None:
    """(PostgreSQL first: it must outlive the replicas, whose teardown lists sessions.)"""
    a = await replicas.open(database_url=own_postgres.url, database_timeout=2)
    await call(a, "create_session", session_id="before")
    before = replicas.gateway.kernel_ids()
    own_postgres.stop()
    text = await tool_error(a, "create_session", {"session_id": "during"})
    assert text.startswith("DATABASE_UNAVAILABLE:")
    text = await tool_error(a, "list_sessions", {})
    assert text.startswith("DATABASE_UNAVAILABLE:")
    assert replicas.gateway.kernel_ids() == before
    # A session this replica holds keeps running code meanwhile.
    assert (await run(a, "2 * 21", session_id="before"))["result"] == "42"
    own_postgres.start()
    await call(a, "create_session", session_id="during")
    assert set(listed(await call(a, "list_sessions"))) == {"before", "during"}


@pytest.fixture
def two_servers(
    replicas: Replicas, postgres_url: str, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    env = {
        "MCP_AUTH_TOKEN": "",
        "MCP_AUTH_TOKENS_FILE": str(tokens),
        "MCP_DATABASE_URL": postgres_url,
    }
    servers = [ServerProcess(replicas, tmp_path / f"state-{n}", env) for n in range(2)]
    try:
        yield servers
    finally:
        codes = [server.stop() for server in servers]
        assert codes == [0, 0], f"servers exited with {codes}"


async def test_principals_stay_apart_across_replicas(
    replicas: Replicas, two_servers: list[ServerProcess]
) -> None:
    first, second = two_servers
    opened: list[Client[Any]] = []

    async def client(server: ServerProcess, token: str) -> Client[Any]:
        opened.append(await connect(server, token))
        return opened[-1]

    try:
        alice_a, bob_b = await client(first, ALICE), await client(second, BOB)
        alice_b, bob_a = await client(second, ALICE), await client(first, BOB)
        await call(alice_a, "create_session", session_id="work", description="alice's")
        await call(bob_b, "create_session", session_id="work", description="bob's")
        await call(bob_b, "create_session", session_id="bob-only")

        names: Callable[[dict[str, Any]], dict[str, str]] = lambda listing: {  # noqa: E731
            s["session_id"]: s["description"] for s in listing["sessions"]
        }
        assert names(await call(alice_b, "list_sessions")) == {"work": "alice's"}
        assert names(await call(bob_a, "list_sessions")) == {
            "work": "bob's",
            "bob-only": "",
        }
        await run(alice_a, "who = 'alice'", session_id="work")
        await run(bob_a, "who = 'bob'", session_id="work")
        assert (await run(alice_b, "who", session_id="work"))["result"] == "'alice'"
        text = await tool_error(alice_b, "run_python_code", {"code": "1", "session_id": "bob-only"})
        assert text.startswith("SESSION_NOT_FOUND:")
        text = await tool_error(alice_b, "delete_session", {"session_id": "bob-only"})
        assert text.startswith("SESSION_NOT_FOUND:")
        for session_id in ("work", "bob-only"):
            await call(bob_a, "delete_session", session_id=session_id)
        await call(alice_b, "delete_session", session_id="work")
        assert names(await call(alice_a, "list_sessions")) == {}
        assert names(await call(bob_b, "list_sessions")) == {}
    finally:
        for each in opened:
            await each.__aexit__(None, None, None)
