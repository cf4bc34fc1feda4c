"""Secure by default, on the real command: HTTP needs the token the server made at first
start (``python-mcp-server token`` prints it); ``--no-auth`` only on loopback; no usable
sandbox means no kernel."""

from __future__ import annotations

import stat
import subprocess

import httpx
from fastmcp import Client

from tests.e2e.conftest import COMMAND, INITIALIZE, MCP_HEADERS, NO_KERNELS, StartServer
from tests.helpers import call, tool_error


def printed_token(*args: str) -> str:
    done = subprocess.run(
        [COMMAND, "token", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # the token and nothing else
    return lines[0]


def test_default_start_requires_the_token_it_made(start_server: StartServer) -> None:
    server = start_server(env=NO_KERNELS)
    token_file = server.token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "python-mcp-server token" in server.log()
    token = printed_token("--workspace-dir", str(server.workspace))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        anonymous = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
        wrong = {**MCP_HEADERS, "Authorization": "Bearer not-the-token"}
        assert http.post("/mcp", json=INITIALIZE, headers=wrong).status_code == 401
        right = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        assert http.post("/mcp", json=INITIALIZE, headers=right).status_code == 200
        assert http.get("/files/download/x").status_code == 401


def test_the_token_survives_a_restart(start_server: StartServer) -> None:
    first = start_server(env=NO_KERNELS)
    token = first.token
    assert first.stop() == 0
    second = start_server(env=NO_KERNELS, workspace=first.workspace)
    assert second.token == token
    with httpx.Client(base_url=second.url, timeout=30) as http:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        assert http.post("/mcp", json=INITIALIZE, headers=headers).status_code == 200


def test_no_auth_only_on_loopback(start_server: StartServer) -> None:
    refused = start_server("--no-auth", "--host", "0.0.0.0", env=NO_KERNELS, wait=False)
    assert refused.process.wait(timeout=60) == 2
    assert "refusing --no-auth on 0.0.0.0" in refused.log()
    open_server = start_server("--no-auth", env=NO_KERNELS)
    assert "--no-auth: HTTP without a token" in open_server.log()
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        assert http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code == 200
    assert not open_server.token_file.exists()


async def test_no_usable_sandbox_means_no_kernel(start_server: StartServer) -> None:
    """No sandbox flag and no working bwrap: kernels are refused with SANDBOX_UNAVAILABLE
    (never started unconfined) and the server keeps serving."""
    server = start_server(env={**NO_KERNELS, "MCP_BWRAP_PATH": "/bin/false"})
    async with Client(server.mcp_url, auth=server.token, timeout=60) as client:
        error = await tool_error(client, "run_python_code", {"code": "1 + 1"})
        assert error.startswith("SANDBOX_UNAVAILABLE: ")
        assert "--sandbox none" in error
        health = await call(client, "health_check")
        assert health["limits"]["enforced"]["sandbox"] == "unavailable"
    assert server.process.poll() is None, server.log()
    assert server.kernel_pids() == set()
