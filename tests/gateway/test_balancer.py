"""Replicas behind a real load balancer: nginx round robin, no affinity, and failover.

Two ``python-mcp-server`` processes share one Kernel Gateway (and, once configured, the
shared stores) behind nginx (tests/services/nginx.py). Clients talk only to nginx; its
access log says which replica served each request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest
from fastmcp import Client
from fastmcp_tasks import call_tool_task
from mcp.shared.exceptions import MCPError

from tests.gateway.conftest import Replicas
from tests.gateway.replica_process import BALANCED_TOKEN, ReplicaProcess
from tests.helpers import call, run
from tests.services.nginx import Balancer

DEADLINE = 60.0
#: Server starts take up to a minute each on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(900)


@dataclass
class Balanced:
    """Two replicas and the nginx in front of them."""

    servers: list[ReplicaProcess]
    balancer: Balancer

    @property
    def url(self) -> str:
        return f"{self.balancer.url}/mcp"

    def served(self, since: int = 0) -> list[str]:
        """The replica that answered each finished MCP request (POST), in order."""
        return [
            entry["upstream"].split(", ")[-1]
            for entry in self.balancer.access()[since:]
            if entry["method"] == "POST"
            and entry["uri"] == "/mcp"
            and entry["status"] in ("200", "202")
        ]

    async def served_after(self, since: int, count: int) -> list[str]:
        """``served(since)`` once it holds ``count`` requests: nginx writes a request's
        line just after its last byte, which the client may read first."""
        with anyio.fail_after(DEADLINE):
            while len(served := self.served(since)) < count:  # noqa: ASYNC110 (a log file)
                await asyncio.sleep(0.01)
        return served

    def client(self) -> Client[Any]:
        return Client(self.url, auth=BALANCED_TOKEN)


@pytest.fixture
def shared_stores(request: pytest.FixtureRequest) -> dict[str, str]:
    """What the replicas share besides the gateway, by indirect parametrisation:
    ``"gateway"`` (nothing), ``"postgres"`` (``MCP_DATABASE_URL``: history, audit, the
    session registry) and ``"redis"`` (``MCP_REDIS_URL``: tasks), joined by ``+``."""
    kinds = str(getattr(request, "param", "gateway")).split("+")
    env: dict[str, str] = {}
    if "postgres" in kinds:
        env["MCP_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    if "redis" in kinds:
        env["MCP_REDIS_URL"] = request.getfixturevalue("redis_server").url
    return env


@pytest.fixture
async def balanced(
    replicas: Replicas,
    tmp_path: Path,
    nginx: Callable[..., Balancer],
    shared_stores: dict[str, str],
) -> AsyncIterator[Balanced]:
    servers = [
        ReplicaProcess(replicas.gateway, replicas.namespace, tmp_path / f"state-{n}", shared_stores)
        for n in range(2)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
        balancer = nginx([server.port for server in servers], fail_timeout=1)
        yield Balanced(servers, balancer)
    finally:
        codes = [server.stop() for server in servers]
    assert all(code in (0, None) for code in codes), f"replicas exited with {codes}"


async def test_a_client_through_nginx_needs_no_sticky_sessions(balanced: Balanced) -> None:
    async with balanced.client() as client:
        await call(client, "create_session", session_id="balanced")
        await run(client, "hits = []", session_id="balanced")
        for n in range(4):
            await run(client, f"hits.append({n})", session_id="balanced")
        assert (await run(client, "hits", session_id="balanced"))["result"] == "[0, 1, 2, 3]"
        await call(client, "delete_session", session_id="balanced")
    served = await balanced.served_after(0, 7)
    assert {server.address for server in balanced.servers} <= set(served), served


def rpc(http: httpx.Client, url: str, body: dict[str, Any]) -> Any:
    response = http.post(url, json=body)
    response.raise_for_status()
    text = response.text
    if text.startswith(("event:", "data:")):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    return json.loads(text) if text.strip() else None


def tool_call(n: int, name: str, **arguments: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params}


async def test_raw_json_rpc_through_nginx_needs_no_sticky_sessions(balanced: Balanced) -> None:
    """A 2025-06-18 client holding an mcp-session-id, every request to the balancer."""
    headers = {
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {BALANCED_TOKEN}",
    }
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "behind-nginx", "version": "1"},
    }
    await asyncio.to_thread(raw_session, balanced, headers, init)
    served = await balanced.served_after(0, 7)
    assert len(served) == 7, balanced.balancer.access()
    # Round robin with nobody failing: the replicas take turns.
    assert all(a != b for a, b in itertools.pairwise(served)), served
    assert set(served) == {server.address for server in balanced.servers}, served


def raw_session(balanced: Balanced, headers: dict[str, str], init: dict[str, Any]) -> None:
    with httpx.Client(timeout=DEADLINE, headers=headers) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}
        reply = rpc(http, balanced.url, body)
        assert reply["result"]["serverInfo"]["name"] == "python-mcp-server"
        rpc(http, balanced.url, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        created = rpc(http, balanced.url, tool_call(2, "create_session", session_id="raw"))
        assert not created["result"].get("isError"), created
        results = []
        for n, code in enumerate(["rr = 20", "rr += 1", "rr * 2"]):
            body = tool_call(10 + n, "run_python_code", code=code, session_id="raw")
            reply = rpc(http, balanced.url, body)
            assert not reply["result"].get("isError"), reply
            results.append(reply["result"]["structuredContent"].get("result"))
        assert results == [None, None, "42"]
        rpc(http, balanced.url, tool_call(20, "delete_session", session_id="raw"))


def serving(servers: list[ReplicaProcess]) -> list[ReplicaProcess]:
    """The replicas holding an open request from nginx now (on their listening port)."""
    found = []
    for server in servers:
        connections = psutil.Process(server.pid).net_connections(kind="tcp")
        if any(
            c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port for c in connections
        ):
            found.append(server)
    return found


def sole_holder(servers: list[ReplicaProcess]) -> ReplicaProcess | None:
    """The one replica holding a request; None while none or several do (a connection
    that just closed may linger a moment)."""
    found = serving(servers)
    return found[0] if len(found) == 1 else None


async def wait_for(predicate: Callable[[], Any], what: str) -> Any:
    """Poll until ``predicate()`` is truthy, within the deadline."""
    with anyio.fail_after(DEADLINE):
        while not (value := predicate()):  # noqa: ASYNC110 (polls the OS, no event to wait on)
            await asyncio.sleep(0.02)
    assert value, what
    return value


async def history_through_each_replica(balanced: Balanced, client: Client[Any]) -> list[Any]:
    """The session's history read through both replicas, once both agree (bounded wait)."""
    with anyio.fail_after(DEADLINE):
        while True:
            before = len(balanced.balancer.access())
            listings = [await call(client, "get_execution_history", session_id="fo")]
            listings.append(await call(client, "get_execution_history", session_id="fo"))
            served = await balanced.served_after(before, 2)
            assert len(set(served)) == 2, served  # round robin: one read from each
            codes = [[entry["code"] for entry in listing["entries"]] for listing in listings]
            if codes[0] == codes[1]:
                return codes[0]
            await asyncio.sleep(0.05)  # the other replica's write queue has not written yet


@pytest.mark.parametrize("shared_stores", ["gateway", "postgres+redis"], indirect=True)
async def test_failover_keeps_state_and_never_reruns_the_lost_call(
    balanced: Balanced, replicas: Replicas, shared_stores: dict[str, str]
) -> None:
    marks = replicas.gateway.workspace / f"marks-{uuid.uuid4().hex}"
    marks.mkdir()
    started, release = marks / "started", marks / "release"
    async with balanced.client() as client:
        await call(client, "create_session", session_id="fo")
        await run(client, "counter = 0\nkept = 'yes'", session_id="fo")
        waits = (
            "import pathlib, time\n"
            "counter += 1\n"
            f"pathlib.Path({str(started)!r}).write_text('running')\n"
            f"while not pathlib.Path({str(release)!r}).exists():\n"
            "    time.sleep(0.02)\n"
            "'released'"
        )
        async with balanced.client() as other:
            in_flight = asyncio.create_task(run(other, waits, session_id="fo", timeout=300))
            await wait_for(started.exists, "the cell started")
            dead = await wait_for(lambda: sole_holder(balanced.servers), "the call's replica")
            [alive] = [server for server in balanced.servers if server is not dead]
            before = len(balanced.balancer.access())
            assert not dead.kill(), "the killed replica left processes running"
            # Reported to its client as an error (nginx's 502 for the broken request).
            with pytest.raises(MCPError, match="error response"):
                with anyio.fail_after(DEADLINE):
                    await in_flight
            lost = [e for e in balanced.balancer.access()[before:] if e["status"] == "502"]
            assert [e["upstream"] for e in lost] == [dead.address], lost
        release.write_text("go")

        # The next call: served by the survivor, the session's state intact, the lost
        # call run exactly once (nginx never passed it on to the other replica).
        after_kill = len(balanced.balancer.access())
        data = await run(client, "counter, kept", session_id="fo")
        assert data["result"] == "(1, 'yes')", data
        served = await balanced.served_after(after_kill, 1)
        assert served == [alive.address], balanced.balancer.access()[before:]

        # The dead replica comes back on its port and takes traffic again.
        await asyncio.to_thread(dead.start)
        back = len(balanced.balancer.access())
        with anyio.fail_after(DEADLINE):
            while dead.address not in balanced.served(back):
                data = await run(client, "counter", session_id="fo")
                assert data["result"] == "1", data
        if "MCP_DATABASE_URL" in shared_stores:
            # One history for the session through either replica: what each replica ran
            # before and after the kill, each once (the lost call was never re-run).
            codes = await history_through_each_replica(balanced, client)
            assert codes.count("counter = 0\nkept = 'yes'") == 1, codes
            assert codes.count("counter, kept") == 1, codes
            assert codes.count(waits) <= 1, codes
        if "MCP_DATABASE_URL" in shared_stores:
            # The session registry: a session created through one replica is listed
            # through the other (round robin: create on X, list on Y, list on X).
            since = len(balanced.balancer.access())
            await call(client, "create_session", session_id="fresh")
            listings = [await call(client, "list_sessions") for _ in range(2)]
            order = await balanced.served_after(since, 3)
            assert order[0] != order[1], order
            assert order[2] == order[0], order
            for listing in listings:
                names = [entry["session_id"] for entry in listing["sessions"]]
                assert {"fo", "fresh"} <= set(names), names
                assert len(names) == len(set(names)), names
            await call(client, "delete_session", session_id="fresh")
        if "MCP_REDIS_URL" in shared_stores:
            # A task created through one replica, asked about through the other (round
            # robin, both in rotation again), read through either.
            since = len(balanced.balancer.access())
            task = await call_tool_task(
                client, "run_python_code", {"code": "counter + 41", "session_id": "fo"}
            )
            await task.status()
            first_two = (await balanced.served_after(since, 2))[:2]
            assert len(set(first_two)) == 2, first_two
            result = await task.result()
            assert result.structured_content is not None
            assert result.structured_content["result"] == "42"
        await call(client, "delete_session", session_id="fo")
