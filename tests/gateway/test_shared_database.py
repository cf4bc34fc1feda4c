"""Replicas on one gateway sharing one PostgreSQL: one history and one audit trail, and
each principal still sees only its own history (real commands with a tokens file)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastmcp import Client

from tests.gateway.conftest import Replicas
from tests.helpers import call, free_port, run

COMMAND = str(Path(sys.executable).parent / "python-mcp-server")

#: What these tests prove is the shared store, not the gateway: they run on Kernel Gateway
#: only (the gateway behaviours run on both gateways in the other tests/gateway files).
pytestmark = pytest.mark.parametrize("gateway", ["kernel-gateway"], indirect=True)


async def history_until(
    client: Client[Any], done: Callable[[list[str]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """The history listing once ``done(execution ids)`` holds (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = await call(client, "get_execution_history")
        ids = [entry["execution_id"] for entry in listing["entries"]]
        if done(ids) or time.monotonic() > deadline:
            assert done(ids), ids
            return listing
        await asyncio.sleep(0.05)


def audit_rows(url: str) -> list[dict[str, object]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT record FROM audit ORDER BY id").fetchall()
    return [json.loads(row[0]) for row in rows]


async def test_history_and_audit_are_the_same_through_every_replica(
    replicas: Replicas, postgres_url: str
) -> None:
    a = await replicas.open(database_url=postgres_url)
    b = await replicas.open(database_url=postgres_url)
    through_a = await run(a, "6 * 7")
    assert through_a["result"] == "42"
    through_b = await run(b, "print('from b')")

    expected = [through_b["execution_id"], through_a["execution_id"]]
    for client in (a, b):
        # A replica reads its own writes at once; another's once its queue wrote them.
        listing = await history_until(client, lambda ids: ids == expected)
        assert listing["entries"][1]["code"] == "6 * 7"

    # Each execution is audited once, whichever replica ran it (and never with its code).
    executions = [r for r in audit_rows(postgres_url) if r["event"] == "execution"]
    assert sorted(r["execution_id"] for r in executions) == sorted(
        [through_a["execution_id"], through_b["execution_id"]]
    )
    assert all(r["principal"] == "default" and "code" not in r for r in executions)

    cleared = await call(b, "clear_execution_history")
    assert cleared["cleared_count"] == 2
    assert (await call(a, "get_execution_history"))["entries"] == []


ALICE = "alice-gateway-db-token-0123"
BOB = "bob-gateway-db-token-0123456"


@contextlib.contextmanager
def server_process(
    replicas: Replicas, state: Path, database_url: str, tokens: Path
) -> Iterator[str]:
    """The real command on the gateway and the database; yields its MCP URL."""
    port = free_port()
    env = {
        **os.environ,
        "MCP_GATEWAY_URL": replicas.gateway.url,
        "MCP_GATEWAY_TOKEN": replicas.gateway.token,
        "MCP_GATEWAY_NAMESPACE": replicas.namespace,
        "MCP_DATABASE_URL": database_url,
        "MCP_AUTH_TOKENS_FILE": str(tokens),
        "MCP_TOOLSETS": "default,history",
        "FASTMCP_STATELESS_HTTP": "true",
    }
    command = [COMMAND, "--port", str(port), "--workspace-dir", str(replicas.gateway.workspace)]
    command += ["--state-dir", str(state), "--log-level", "WARNING"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


async def connect(url: str, token: str) -> Client[Any]:
    deadline = time.monotonic() + 60
    while True:
        client: Client[Any] = Client(url, auth=token)
        try:
            await client.__aenter__()
            return client
        except Exception:
            assert time.monotonic() < deadline, f"{url} did not answer"
            await asyncio.sleep(0.1)


async def test_principals_stay_apart_in_the_shared_history(
    replicas: Replicas, postgres_url: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    with (
        server_process(replicas, tmp_path / "a", postgres_url, tokens) as url_a,
        server_process(replicas, tmp_path / "b", postgres_url, tokens) as url_b,
    ):
        alice_a = await connect(url_a, ALICE)
        alice_b = await connect(url_b, ALICE)
        bob_b = await connect(url_b, BOB)
        try:
            done = await run(alice_a, "'alice ran this'")
            await history_until(alice_b, lambda ids: ids == [done["execution_id"]])
            mine = await run(bob_b, "'bob ran this'")
            # Bob, on the replica alice's history also reaches, sees only his own.
            await history_until(bob_b, lambda ids: ids == [mine["execution_id"]])
            assert (await call(bob_b, "clear_execution_history"))["cleared_count"] == 1
            await history_until(alice_a, lambda ids: ids == [done["execution_id"]])
            await call(alice_a, "delete_session", session_id="default")
            await call(bob_b, "delete_session", session_id="default")
        finally:
            for client in (alice_a, alice_b, bob_b):
                await client.__aexit__(None, None, None)
