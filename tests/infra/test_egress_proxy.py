"""The egress proxy on real sockets: its decisions, public addresses, tunnels and HTTP.

Loopback only. Names resolve through a resolver function given to the proxy (the hook
DNS goes through), so "a name that resolves to cloud metadata" needs no DNS server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from python_mcp_server.infra.network.access import NetworkAccess
from python_mcp_server.infra.network.addresses import is_public
from python_mcp_server.infra.network.proxy import EgressProxy, decide, split_authority

ZONE = {
    "pypi.org": ["151.101.0.223"],
    "evil-metadata.example": ["169.254.169.254"],
    "evil-loopback.example": ["127.0.0.1", "::1"],
    "evil-lan.example": ["10.1.2.3"],
    "evil-mapped.example": ["::ffff:169.254.169.254"],
    "mixed.example": ["10.0.0.1", "93.184.216.34"],
}


async def fake_dns(host: str, port: int) -> list[str]:
    if host not in ZONE:
        raise OSError(f"no such name {host}")
    return ZONE[host]


ACCESS = NetworkAccess(
    "allowlist",
    frozenset({"pypi.org", "*.pythonhosted.org", *[n for n in ZONE if n != "pypi.org"]}),
)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("151.101.0.223", True),
        ("2a04:4e42::223", True),
        ("127.0.0.1", False),
        ("127.8.8.8", False),
        ("::1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("255.255.255.255", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("2002:9765:df::1", True),  # 6to4 of a public address
        ("fe80::1%eth0", False),
        ("not-an-address", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(
    ("host", "port", "address", "refusal"),
    [
        ("pypi.org", 443, "151.101.0.223", None),
        ("PyPI.org.", 443, "151.101.0.223", None),
        ("pypi.org", 22, None, "port 22 is not allowed"),
        ("files.pythonhosted.org", 443, None, "does not resolve"),
        ("pythonhosted.org", 443, None, "not on the kernel network allowlist"),
        ("pypi.org.evil.example", 443, None, "not on the kernel network allowlist"),
        ("evilpypi.org", 443, None, "not on the kernel network allowlist"),
        ("169.254.169.254", 80, None, "is an address"),
        ("::ffff:a9fe:a9fe", 80, None, "is an address"),
        ("evil-metadata.example", 80, None, "not a public address"),
        ("evil-loopback.example", 443, None, "not a public address"),
        ("evil-lan.example", 443, None, "not a public address"),
        ("evil-mapped.example", 443, None, "not a public address"),
        ("mixed.example", 443, "93.184.216.34", None),
    ],
)
async def test_decisions(host: str, port: int, address: str | None, refusal: str | None) -> None:
    decision = await decide(ACCESS, host, port, fake_dns)
    assert decision.address == address
    if refusal is None:
        assert decision.refusal is None
    else:
        assert decision.refusal is not None
        assert refusal in decision.refusal


async def test_other_modes_and_pins() -> None:
    for mode in ("deny", "allow"):
        access = NetworkAccess(mode, ACCESS.domains)  # type: ignore[arg-type]
        refused = await decide(access, "pypi.org", 443, fake_dns)
        assert refused.address is None
    pinned = NetworkAccess(
        "allowlist", frozenset({"mirror.lan"}), pinned=(("mirror.lan", "10.9.9.9"),)
    )
    assert (await decide(pinned, "mirror.lan", 443, fake_dns)).address == "10.9.9.9"


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("pypi.org:443", ("pypi.org", 443)),
        ("[::1]:80", ("::1", 80)),
        ("pypi.org", None),
        ("pypi.org:0", None),
        ("pypi.org:65536", None),
        ("pypi.org:+443", None),
        ("user@pypi.org:443", None),
        ("pypi.org/x:443", None),
    ],
)
def test_connect_targets(target: str, parsed: tuple[str, int] | None) -> None:
    assert split_authority(target) == parsed


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    """A loopback TCP server answering one HTTP-ish line with what it received."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + head)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def exchange(path: Path, request: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_tunnel_and_plain_http_through_the_socket(tmp_path: Path, upstream: int) -> None:
    access = NetworkAccess(
        "allowlist",
        frozenset({"index.test"}),
        frozenset({upstream}),
        pinned=(("index.test", "127.0.0.1"),),
    )
    proxy = EgressProxy(resolver=fake_dns)
    path = tmp_path / "egress.sock"
    await proxy.listen(path, access)
    try:
        tunnel = await exchange(
            path,
            f"CONNECT index.test:{upstream} HTTP/1.1\r\n\r\nGET /t HTTP/1.1\r\n\r\n".encode(),
        )
        assert tunnel.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
        assert tunnel.endswith(b"GET /t HTTP/1.1\r\n\r\n")
        plain = await exchange(
            path,
            f"GET http://index.test:{upstream}/simple/?q=1 HTTP/1.1\r\nHost: index.test\r\n"
            "Proxy-Authorization: secret\r\n\r\n".encode(),
        )
        assert plain.startswith(b"HTTP/1.1 200 OK")
        assert b"GET /simple/?q=1 HTTP/1.1\r\nHost: index.test\r\n\r\n" in plain
        assert b"secret" not in plain
        refused = await exchange(path, b"CONNECT evil-metadata.example:80 HTTP/1.1\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 403 Forbidden")
        garbage = await exchange(path, b"HELLO\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400 Bad Request")
    finally:
        await proxy.aclose()
    assert not path.exists()
