"""Auth, Origin and Host checks and body limits on the real command, over real HTTP."""

from __future__ import annotations

import socket
from typing import Any

import httpx
from fastmcp import Client

from tests.e2e.conftest import INITIALIZE, MCP_HEADERS, NO_KERNELS, StartServer
from tests.helpers import run
from tests.server.test_http_hosts import FOREIGN_HOSTS, LOOPBACK_HOSTS, MALFORMED_HOSTS

TOKEN = "http-suite-token-0b5e"


def initialize(http: httpx.Client, **headers: str) -> httpx.Response:
    return http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


def test_token_guards_mcp_and_the_file_routes(start_server: StartServer) -> None:
    server = start_server("--auth-token", TOKEN, env=NO_KERNELS)
    (server.workspace / "report.txt").write_text("numbers")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        refused = [
            initialize(http),
            initialize(http, Authorization="Bearer wrong"),
            http.get("/files/download/report.txt"),
            http.post("/files/upload", files={"file": ("a.txt", b"data")}),
        ]
        for response in refused:
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "UNAUTHORIZED"
            assert b"numbers" not in response.content
        assert initialize(http, **bearer).status_code == 200
        download = http.get("/files/download/report.txt", headers=bearer)
        assert (download.status_code, download.text) == (200, "numbers")
        upload = http.post("/files/upload", files={"file": ("a.txt", b"data")}, headers=bearer)
        assert upload.status_code in (200, 201), upload.text
        assert (server.workspace / "uploads" / "a.txt").read_bytes() == b"data"
        health = http.get("/health")  # open for probes, by design
        assert health.status_code == 200
        assert TOKEN not in health.text


async def test_a_client_with_the_token_runs_code(start_server: StartServer) -> None:
    server = start_server(env={"MCP_AUTH_TOKEN": TOKEN, **NO_KERNELS})
    async with Client(server.mcp_url, auth=TOKEN) as client:
        assert (await run(client, "6 * 7"))["result"] == "42"


def test_origin_and_host_checks(start_server: StartServer) -> None:
    server = start_server(env={"MCP_ALLOWED_ORIGINS": "https://app.example.com", **NO_KERNELS})
    with httpx.Client(base_url=server.url, timeout=30, headers=server.headers) as http:
        evil = initialize(http, Origin="https://evil.example")
        assert evil.status_code == 403
        assert evil.json()["error"]["code"] == "FORBIDDEN_ORIGIN"
        assert initialize(http, Origin="http://localhost:6274").status_code == 200
        assert initialize(http, Origin="https://app.example.com").status_code == 200
        assert initialize(http).status_code == 200  # no Origin: not a browser
        rebound = initialize(http, Host=f"attacker.example:{server.port}")
        assert rebound.status_code == 403
        assert http.get("/health", headers={"Origin": "https://evil.example"}).status_code == 403


def raw_get(port: int, path: str, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte (no client library normalising headers)."""
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "Connection: close"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest


HOSTILE_ORIGINS = [
    "http://[::1].evil.com",
    "http://[::1].evil.com:8000",
    "http://[::1]evil.com",
    "http://localhost@evil.com",
    "http://localhost.evil.com",
    "http://127.0.0.1.nip.io",
    "http://127.1",
    "http://[fe80::1%25lo]",
    "http://localhost:8000/x",
    "http://ｌｏｃａｌｈｏｓｔ",
    "null",
]


def test_hostile_hosts_and_origins_are_refused(start_server: StartServer) -> None:
    """Every hostile Host or Origin from the unit tables, byte for byte, gets a refusal."""
    server = start_server(env=NO_KERNELS)
    answers: dict[str, int] = {}
    for host in LOOPBACK_HOSTS:
        status, _ = raw_get(server.port, "/health", [("Host", host)])
        assert status == 200, host
    # Surrounding blanks are not part of a header value on the wire (HTTP trims them).
    for host in [h for h in FOREIGN_HOSTS + MALFORMED_HOSTS if h == h.strip(" \t")]:
        status, body = raw_get(server.port, "/health", [("Host", host)])
        answers[host] = status
        # 400: the HTTP parser refused the header before us; 403: our guard did.
        assert status in (400, 403), (host, status, body)
        if status == 403:
            assert b"FORBIDDEN_ORIGIN" in body
    # The forms the report found, and every well-formed foreign host, reach our guard.
    for host in ["[::1].evil.com", "[::1].evil.com:8000", *FOREIGN_HOSTS]:
        assert answers[host] == 403, host
    two_hosts = [("Host", "localhost"), ("Host", "evil.com")]
    assert raw_get(server.port, "/health", two_hosts)[0] in (400, 403)
    local = ("Host", f"127.0.0.1:{server.port}")
    for origin in HOSTILE_ORIGINS:
        status, body = raw_get(server.port, "/health", [local, ("Origin", origin)])
        assert (status, b"FORBIDDEN_ORIGIN" in body) == (403, True), origin
    assert raw_get(server.port, "/health", [local, ("Origin", "http://[::1]:5173")])[0] == 200


def test_request_body_limit(start_server: StartServer) -> None:
    server = start_server(env={"MCP_MAX_REQUEST_BYTES": "4096", **NO_KERNELS})
    with httpx.Client(base_url=server.url, timeout=30, headers=server.headers) as http:
        big = {**INITIALIZE, "params": {**INITIALIZE["params"], "pad": "x" * 8000}}  # type: ignore[dict-item]
        response = http.post("/mcp", json=big, headers=MCP_HEADERS)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"

        def chunks() -> Any:  # a well-formed start, then more than the limit
            yield (
                b'--b0undary\r\nContent-Disposition: form-data; name="file"; '
                b'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
            )
            for _ in range(8):
                yield b"y" * 1024

        for path, kind in (
            ("/files/upload", "multipart/form-data; boundary=b0undary"),
            ("/mcp", "application/json"),
        ):
            streamed = http.post(
                path, content=chunks(), headers={**MCP_HEADERS, "Content-Type": kind}
            )
            assert streamed.status_code == 413, (path, streamed.text)
        assert not (server.workspace / "uploads" / "big.bin").exists()
        assert initialize(http).status_code == 200  # and the server carries on


def test_refuses_a_public_bind_without_a_token(start_server: StartServer) -> None:
    server = start_server("--host", "0.0.0.0", "--no-auth", env=NO_KERNELS, wait=False)
    assert server.process.wait(120) == 2
    assert "refusing --no-auth on 0.0.0.0" in server.log()
