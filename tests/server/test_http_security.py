"""The HTTP middleware on a small ASGI app: origins, hosts, tokens and body sizes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from python_mcp_server.server.http_security import (
    HOST_VERDICTS,
    insecure_bind_problem,
    is_loopback_host,
    normalize_origin,
    security_middleware,
)
from python_mcp_server.settings import Settings


async def echo(request: Request) -> PlainTextResponse:
    body = b""
    async for chunk in request.stream():
        body += chunk
    return PlainTextResponse(f"{request.url.path} {len(body)}")


def app_for(tmp_path: Path, **values: object) -> Starlette:
    settings = Settings(workspace_dir=tmp_path, **values)  # type: ignore[arg-type]
    routes = [
        Route("/mcp", echo, methods=["GET", "POST"]),
        Route("/health", echo),
        Route("/files/{rest:path}", echo, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, middleware=security_middleware(settings))


async def client_for(app: Starlette, host: str = "127.0.0.1:8000") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(
        tmp_path,
        auth_token="s3cret",
        allowed_origins="https://app.example.com, http://tool.internal:8080",
        max_request_bytes=2048,
    )
    async with await client_for(app) as client:
        yield client


AUTH = {"Authorization": "Bearer s3cret"}


@pytest.mark.parametrize("path", ["/mcp", "/files/download/a.txt", "/files/upload"])
async def test_token_is_required_everywhere_but_health(
    guarded: httpx.AsyncClient, path: str
) -> None:
    refused = await guarded.post(path, content=b"x")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["code"] == "UNAUTHORIZED"
    wrong = await guarded.post(path, headers={"Authorization": "Bearer s3cre"})
    assert wrong.status_code == 401
    basic = await guarded.post(path, headers={"Authorization": "Basic s3cret"})
    assert basic.status_code == 401
    ok = await guarded.post(path, headers=AUTH, content=b"xyz")
    assert (ok.status_code, ok.text) == (200, f"{path} 3")
    assert (await guarded.get("/health")).status_code == 200


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),
        ("http://localhost:5173", 200),
        ("http://127.0.0.1", 200),
        ("http://[::1]:3000", 200),
        ("https://app.example.com", 200),
        ("https://APP.example.com:443", 200),
        ("http://tool.internal:8080", 200),
        ("http://tool.internal:8081", 403),
        ("http://app.example.com", 403),
        ("https://evil.example", 403),
        ("http://localhost.evil.example", 403),
        ("null", 403),
        ("not a url", 403),
    ],
)
async def test_origins(guarded: httpx.AsyncClient, origin: str | None, status: int) -> None:
    headers = dict(AUTH)
    if origin is not None:
        headers["Origin"] = origin
    response = await guarded.post("/mcp", headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "FORBIDDEN_ORIGIN"


async def test_origin_is_checked_before_the_token(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/health", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8000", 200),
        ("localhost:8000", 200),
        ("[::1]:8000", 200),
        ("app.example.com", 200),  # the host of an allowed origin (a proxy in front)
        ("evil.example:8000", 403),  # DNS rebinding: a foreign name resolving to us
        ("10.0.0.5:8000", 403),
    ],
)
async def test_loopback_bound_server_checks_the_host(
    tmp_path: Path, host: str, status: int
) -> None:
    app = app_for(tmp_path, allowed_origins="https://app.example.com")
    async with await client_for(app, host) as client:
        assert (await client.get("/mcp")).status_code == status


async def test_remembered_host_verdicts_stay_right(tmp_path: Path) -> None:
    """The guard remembers its verdict per Host value (bounded): one app, the same and new
    values over and over, past the bound, each answered as when first seen."""
    app = app_for(tmp_path, allowed_origins="https://app.example.com")
    hosts = {"127.0.0.1:8000": 200, "evil.example:8000": 403, "app.example.com": 200}
    hosts.update({f"h{i}.evil.example": 403 for i in range(HOST_VERDICTS + 10)})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        for _ in range(2):
            for host, status in hosts.items():
                response = await c.get("/mcp", headers={"Host": host})
                assert response.status_code == status, host


async def test_non_loopback_server_does_not_check_the_host(tmp_path: Path) -> None:
    app = app_for(tmp_path, host="0.0.0.0", auth_token="s3cret")
    async with await client_for(app, "mcp.example.net") as client:
        assert (await client.get("/mcp", headers=AUTH)).status_code == 200
        evil = await client.get("/mcp", headers={**AUTH, "Origin": "https://evil.example"})
        assert evil.status_code == 403


async def test_body_limit_announced(guarded: httpx.AsyncClient) -> None:
    fits = await guarded.post("/mcp", headers=AUTH, content=b"a" * 2048)
    assert (fits.status_code, fits.text) == (200, "/mcp 2048")
    big = await guarded.post("/files/upload", headers=AUTH, content=b"a" * 2049)
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "REQUEST_TOO_LARGE"


async def test_body_limit_streamed(guarded: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"b" * 1000

    response = await guarded.post("/files/upload", headers=AUTH, content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"


def test_helpers() -> None:
    assert normalize_origin("HTTPS://Example.com:443/") == "https://example.com"
    assert normalize_origin("http://example.com:8080") == "http://example.com:8080"
    assert normalize_origin("ftp://example.com") is None
    assert normalize_origin("https://example.com/path") is None
    assert is_loopback_host("127.0.0.2")
    assert is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0")


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"host": "127.0.0.1"}, False),
        ({"host": "localhost"}, False),
        ({"host": "0.0.0.0"}, True),
        ({"host": "0.0.0.0", "auth_token": "t"}, False),
        ({"host": "0.0.0.0", "allow_insecure": True}, False),
        ({"host": "0.0.0.0", "transport": "stdio"}, False),
    ],
)
def test_insecure_bind(tmp_path: Path, values: dict[str, object], refused: bool) -> None:
    settings = Settings(workspace_dir=tmp_path, **values)  # type: ignore[arg-type]
    problem = insecure_bind_problem(settings)
    assert (problem is not None) is refused
    if problem:
        assert "MCP_AUTH_TOKEN" in problem
        assert "--allow-insecure" in problem
