"""Principals over HTTP, with the real command: a tokens file names two principals whose
sessions (the same ids) are separate, and JWTs signed by a key made here carry a principal
(``sub``) and scopes that tools and file routes enforce."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastmcp import Client
from fastmcp_tasks import ToolTask, call_tool_task
from jwt.algorithms import RSAAlgorithm
from mcp.shared.exceptions import MCPError

from tests.e2e.conftest import LaunchedServer, StartServer
from tests.helpers import call, run, tool_error

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"
READER = "reader-token-0123456789"
ISSUER = "https://issuer.test"
AUDIENCE = "python-mcp-server"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def server(
    start_server: StartServer, tmp_path: Path, signing_key: rsa.RSAPrivateKey
) -> LaunchedServer:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# principals\nalice {ALICE}\n\nbob   {BOB}\nreader {READER} files:read\n")
    public = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return start_server(
        "--toolsets",
        "default,notebooks,history",
        env={
            "MCP_AUTH_TOKENS_FILE": str(tokens),
            "MCP_JWT_PUBLIC_KEY": public.decode(),
            "MCP_JWT_ISSUER": ISSUER,
            "MCP_JWT_AUDIENCE": AUDIENCE,
            "MCP_KERNEL_POOL_SIZE": "0",
        },
    )


def make_jwt(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, key, algorithm="RS256")


async def test_two_principals_have_separate_sessions(server: LaunchedServer) -> None:
    async with Client(server.mcp_url, auth=ALICE) as alice, Client(server.mcp_url, auth=BOB) as bob:
        await run(alice, "x = 'alice'")
        await run(bob, "x = 'bob'")
        assert (await run(alice, "x"))["result"] == "'alice'"
        assert (await run(bob, "x"))["result"] == "'bob'"

        # The same explicit id names two sessions.
        await call(alice, "create_session", session_id="work")
        await call(bob, "create_session", session_id="work")
        await run(alice, "y = 1", session_id="work")
        bob_sees = await run(bob, "'y' in globals()", session_id="work")
        assert bob_sees["result"] == "False"

        # An opaque id minted for alice does not reach her session from bob.
        minted = (await call(alice, "create_session"))["session_id"]
        assert minted.startswith("s-")
        text = await tool_error(bob, "run_python_code", {"code": "1", "session_id": minted})
        assert text.startswith("SESSION_NOT_FOUND:")
        assert "create_session" in text

        # list_sessions shows only one's own; switch_session moves only one's own default.
        alice_list = await call(alice, "list_sessions")
        bob_list = await call(bob, "list_sessions")
        assert {s["session_id"] for s in alice_list["sessions"]} == {"default", "work", minted}
        assert {s["session_id"] for s in bob_list["sessions"]} == {"default", "work"}
        await call(alice, "switch_session", session_id="work")
        assert (await run(alice, "y"))["result"] == "1"
        assert (await run(bob, "x"))["result"] == "'bob'"
        assert (await call(bob, "list_sessions"))["active_session_id"] == "default"

        # History belongs to its principal too.
        alice_history = await call(alice, "get_execution_history", limit=100)
        codes = {entry["code"] for entry in alice_history["entries"]}
        assert "x = 'alice'" in codes
        assert "x = 'bob'" not in codes

        # Recorded notebooks too, and the live view: a link opens the caller's own session.
        alice_nb = await call(alice, "export_notebook", session_id="work", format="py")
        bob_nb = await call(bob, "export_notebook", session_id="work", format="py")
        assert alice_nb["path"] != bob_nb["path"]
        alice_text = (server.workspace / alice_nb["path"]).read_text()
        bob_text = (server.workspace / bob_nb["path"]).read_text()
        assert "y = 1" in alice_text
        assert "y = 1" not in bob_text
        assert alice_nb["path"] == "notebooks/alice/work.py"
        bob_link = await call(bob, "get_session_view_link", session_id="work")
        assert "/sessions/work/view?t=" in str(bob_link["url"])

        # A task is reachable only by the principal that started it.
        task = await call_tool_task(alice, "run_python_code", {"code": "21 * 2"})
        assert (await task.result()).structured_content["result"] == "42"  # type: ignore[index]
        stolen = ToolTask(bob, "run_python_code", task.create_result)
        with pytest.raises(MCPError, match="not found"):
            await stolen.status()


async def test_wrong_tokens_are_refused(
    server: LaunchedServer, signing_key: rsa.RSAPrivateKey
) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = [
        "not-a-token",
        make_jwt(other_key, sub="mallory", scope="admin"),  # signed by someone else
        make_jwt(signing_key, scope="admin"),  # names nobody
        make_jwt(signing_key, sub="carol", scope="admin", exp=int(time.time()) - 60),
        make_jwt(signing_key, sub="carol", scope="admin", aud="another-service"),
    ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        for token in refused:
            response = await http.post(
                "/mcp", headers={"Authorization": f"Bearer {token}"}, json={}
            )
            assert response.status_code == 401, token
            assert response.json()["error"]["code"] == "UNAUTHORIZED"


async def test_jwt_scopes_are_enforced(
    server: LaunchedServer, signing_key: rsa.RSAPrivateKey
) -> None:
    runner = make_jwt(signing_key, sub="carol", scope="code:execute")
    admin = make_jwt(signing_key, sub="carol", scope="admin")
    async with Client(server.mcp_url, auth=runner) as carol:
        assert (await run(carol, "z = 3\nz"))["result"] == "3"
        text = await tool_error(carol, "write_file", {"path": "a.txt", "content": "hi"})
        assert text.startswith("INSUFFICIENT_SCOPE:")
        assert "files:write" in text
        text = await tool_error(carol, "install_dependencies", {"packages": "six"})
        assert text.startswith("INSUFFICIENT_SCOPE:")
    async with Client(server.mcp_url, auth=admin) as carol_admin:
        await call(carol_admin, "write_file", path="a.txt", content="hi")
        # The same principal (sub), whatever the token: carol's session is still there.
        assert (await run(carol_admin, "z"))["result"] == "3"
    async with httpx.AsyncClient(base_url=server.url) as http:
        denied = await http.get(
            "/files/download/a.txt", headers={"Authorization": f"Bearer {runner}"}
        )
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "INSUFFICIENT_SCOPE"
        reader = make_jwt(signing_key, sub="dave", scope="files:read")
        allowed = await http.get(
            "/files/download/a.txt", headers={"Authorization": f"Bearer {reader}"}
        )
        assert (allowed.status_code, allowed.text) == (200, "hi")


async def test_tools_list_shows_only_what_the_scopes_allow(
    server: LaunchedServer, signing_key: rsa.RSAPrivateKey
) -> None:
    runner = make_jwt(signing_key, sub="erin", scope="code:execute")
    async with Client(server.mcp_url, auth=ALICE) as everything:
        every = {tool.name for tool in await everything.list_tools()}
    async with (
        Client(server.mcp_url, auth=runner) as erin,
        Client(server.mcp_url, auth=READER) as reader,
    ):
        erin_sees = {tool.name for tool in await erin.list_tools()}
        reader_sees = {tool.name for tool in await reader.list_tools()}
        # The cached listing is filtered per caller, whoever asked first.
        assert {tool.name for tool in await erin.list_tools()} == erin_sees

        assert {"run_python_code", "create_session", "list_packages"} <= erin_sees
        assert not {"write_file", "read_file", "install_dependencies"} & erin_sees
        assert reader_sees == {"list_files", "read_file"}
        assert erin_sees | reader_sees < every
        assert {"write_file", "install_dependencies"} <= every

        # Hidden is not the only guard: a call by name is still refused.
        text = await tool_error(reader, "run_python_code", {"code": "1"})
        assert text.startswith("INSUFFICIENT_SCOPE:")
        assert "code:execute" in text
        assert "entries" in await call(reader, "list_files")


class _JwksHandler(http.server.BaseHTTPRequestHandler):
    """Serves the key set of its server at /jwks.json, and counts the fetches."""

    server: _JwksServer

    def do_GET(self) -> None:
        if self.path != "/jwks.json":
            self.send_error(404)
            return
        body = json.dumps({"keys": self.server.keys}).encode()
        self.server.fetches += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _JwksServer(http.server.ThreadingHTTPServer):
    keys: list[dict[str, Any]]
    fetches: int = 0


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    """A JWKS endpoint on a free loopback port, for this test only."""
    served = _JwksServer(("127.0.0.1", 0), _JwksHandler)
    served.keys = []
    thread = threading.Thread(target=served.serve_forever, name="jwks", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.shutdown()
        served.server_close()
        thread.join(timeout=10)


async def test_jwts_verified_against_a_jwks_url(
    start_server: StartServer, jwks_server: _JwksServer
) -> None:
    current = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unknown = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks_server.keys = [public_jwk(other, "old"), public_jwk(current, "new")]
    host, port = jwks_server.server_address[:2]
    server = start_server(
        env={
            "MCP_JWT_JWKS_URL": f"http://{host}:{port}/jwks.json",
            "MCP_JWT_ISSUER": ISSUER,
            "MCP_JWT_AUDIENCE": AUDIENCE,
            "MCP_KERNEL_POOL_SIZE": "0",
        },
    )

    def signed(key: rsa.RSAPrivateKey, kid: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})

    frank = signed(current, "new", sub="frank", scope="code:execute")
    async with Client(server.mcp_url, auth=frank) as client:
        assert (await run(client, "6 * 7"))["result"] == "42"
        tools = {tool.name for tool in await client.list_tools()}
        assert "run_python_code" in tools
        assert "write_file" not in tools
    assert jwks_server.fetches >= 1

    refused = [
        signed(unknown, "new", sub="mallory", scope="admin"),  # a kid it knows, wrong key
        signed(unknown, "stranger", sub="mallory", scope="admin"),  # a kid it does not know
        signed(other, "old", sub="frank", scope="admin", aud="another-service"),
    ]
    async with httpx.AsyncClient(base_url=server.url) as http:
        for token in refused:
            response = await http.post(
                "/mcp", headers={"Authorization": f"Bearer {token}"}, json={}
            )
            assert response.status_code == 401, token
        # The other key of the set is good too (key rotation).
        accepted = signed(other, "old", sub="frank", scope="code:execute")
        response = await http.post("/mcp", headers={"Authorization": f"Bearer {accepted}"}, json={})
        assert response.status_code != 401
