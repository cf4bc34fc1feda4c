"""The real command with MCP_DATABASE_URL: a clear refusal to start without the database,
and two servers sharing one PostgreSQL with principals kept apart."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import psycopg
from fastmcp import Client

from tests.e2e.conftest import StartServer
from tests.helpers import call, free_port, run
from tests.services.postgres import PostgresServer

ALICE = "alice-token-db-0123456789"
BOB = "bob-token-db-0123456789ab"


def refused_start(start_server: StartServer, url: str) -> tuple[int, str]:
    server = start_server(env={"MCP_DATABASE_URL": url, "MCP_KERNEL_POOL_SIZE": "0"}, wait=False)
    code = server.process.wait(timeout=60)
    return code, server.log()


def test_an_unreachable_database_stops_the_start_with_one_clear_line(
    start_server: StartServer,
) -> None:
    url = f"postgresql://pmcp:pw-not-shown-4242@127.0.0.1:{free_port()}/pmcp"
    code, log = refused_start(start_server, url)
    assert code == 1, log
    assert "pw-not-shown-4242" not in log
    (line,) = [line for line in log.splitlines() if "cannot start" in line]
    assert line.startswith("python-mcp-server: cannot start: DATABASE_UNAVAILABLE: ")
    assert f"postgresql://pmcp:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in line
    assert "Connection refused" in line
    assert "Traceback" not in log


def test_a_wrong_password_is_named_without_the_password(
    start_server: StartServer, postgres_server: PostgresServer
) -> None:
    url = postgres_server.url.replace(postgres_server.password, "wrong-secret-77")
    code, log = refused_start(start_server, url)
    assert code == 1, log
    assert "wrong-secret-77" not in log
    assert postgres_server.password not in log
    assert "password authentication failed" in log
    assert "Traceback" not in log


def test_a_role_that_cannot_create_the_tables_stops_the_start(
    start_server: StartServer, postgres_server: PostgresServer, postgres_url: str
) -> None:
    role, password = f"reader_{secrets.token_hex(4)}", secrets.token_hex(12)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    url = postgres_url.replace(f"pmcp:{postgres_server.password}@", f"{role}:{password}@")
    code, log = refused_start(start_server, url)
    assert code == 1, log
    lines = [line for line in log.splitlines() if "cannot start" in line]
    assert len(lines) == 1, log
    line = lines[0]
    assert "permission denied for schema public" in line
    assert f"{role}:***@" in line
    assert password not in log
    assert "Traceback" not in log


async def history_ids(client: Client[Any]) -> list[str]:
    listing = await call(client, "get_execution_history")
    return [entry["execution_id"] for entry in listing["entries"]]


async def test_two_servers_share_history_per_principal(
    start_server: StartServer, postgres_url: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
    env = {
        "MCP_DATABASE_URL": postgres_url,
        "MCP_AUTH_TOKENS_FILE": str(tokens),
        "MCP_KERNEL_POOL_SIZE": "0",
    }
    a = start_server("--toolsets", "default,history", env=env)
    b = start_server("--toolsets", "default,history", env=env)
    async with (
        Client(a.mcp_url, auth=ALICE) as alice_a,
        Client(b.mcp_url, auth=ALICE) as alice_b,
        Client(b.mcp_url, auth=BOB) as bob_b,
    ):
        done = await run(alice_a, "print('alice was here')")
        deadline = time.monotonic() + 20
        while await history_ids(alice_b) != [done["execution_id"]]:
            assert time.monotonic() < deadline, "alice's execution never reached replica B"
            await asyncio.sleep(0.05)
        assert await history_ids(bob_b) == []
        cleared = await call(bob_b, "clear_execution_history")
        assert cleared["cleared_count"] == 0
        assert await history_ids(alice_a) == [done["execution_id"]]
