"""Exact host and origin parsing: hostile forms are refused or foreign, never loopback."""

from __future__ import annotations

import pytest

from python_mcp_server.server.http_hosts import (
    is_loopback_name,
    parse_host_header,
    parse_origin,
)

#: Host header values that name this machine.
LOOPBACK_HOSTS = [
    "localhost",
    "LOCALHOST:8000",
    "localhost.:8000",
    "app.localhost:3000",
    "127.0.0.1",
    "127.0.0.1:8000",
    "127.8.9.10:1",
    "[::1]",
    "[::1]:8000",
    "[0:0:0:0:0:0:0:1]:65535",
    "[::ffff:127.0.0.1]:8000",
]

#: Host header values that are well formed but foreign.
FOREIGN_HOSTS = [
    "evil.com",
    "localhost.evil.com",
    "127.0.0.1.evil.com",
    "127.0.0.1.nip.io:8000",
    "xn--bcher-kva.example",
    "10.0.0.5:8000",
    "0.0.0.0:8000",
    "[::]:8000",
    "[::ffff:10.0.0.1]",
    "[fe80::1]:8000",
]

#: Host header values that are not hosts at all.
MALFORMED_HOSTS = [
    "",
    " localhost",
    "localhost ",
    "[::1].evil.com",
    "[::1].evil.com:8000",
    "[::1]evil.com",
    "[::1]:8000.evil.com",
    "[::1]@evil.com",
    "[::1",
    "::1",
    "::1:8000",
    "[127.0.0.1]",
    "[localhost]",
    "[fe80::1%25eth0]",
    "[fe80::1%eth0]:80",
    "[::1]:",
    "localhost:",
    "localhost:0",
    "localhost:65536",
    "localhost:+80",
    "localhost:8000:9000",
    "localhost:٨٠٠٠",
    "localhost@evil.com",
    "evil.com@localhost",
    "localhost/evil.com",
    "localhost\\evil.com",
    "localhost,evil.com",
    "localhost evil.com",
    "localhost\tx",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "127.000.000.001",
    "127.0.0.256",
    "0x7f000001",
    "evil.0x7f",
    "xn--localhost-.com",
    "1.2.3.4.5",
    "-localhost",
    "local_host",
    "localhost..",
    "a..localhost",
    ".localhost",
    "ｌｏｃａｌｈｏｓｔ",
    "localhost\u0000",
    "lоcalhost",  # a Cyrillic o
    "x" * 64 + ".localhost",
]


@pytest.mark.parametrize("value", LOOPBACK_HOSTS)
def test_loopback_hosts(value: str) -> None:
    host = parse_host_header(value)
    assert host is not None
    assert host.is_loopback


@pytest.mark.parametrize("value", FOREIGN_HOSTS)
def test_foreign_hosts(value: str) -> None:
    host = parse_host_header(value)
    assert host is not None
    assert not host.is_loopback


@pytest.mark.parametrize("value", MALFORMED_HOSTS)
def test_malformed_hosts(value: str) -> None:
    assert parse_host_header(value) is None


def test_parsed_hosts_are_normalised() -> None:
    assert parse_host_header("LocalHost.:80") == parse_host_header("localhost:80")
    host = parse_host_header("[0:0:0:0:0:0:0:1]:8000")
    assert host is not None
    assert (host.name, host.port, host.bracketed) == ("::1", 8000, "[::1]")


@pytest.mark.parametrize(
    ("value", "normalised", "loopback"),
    [
        ("http://localhost:5173", "http://localhost:5173", True),
        ("HTTP://LocalHost:80", "http://localhost", True),
        ("https://[::1]:443", "https://[::1]", True),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000", True),
        ("https://app.example.com", "https://app.example.com", False),
        ("http://localhost.evil.com", "http://localhost.evil.com", False),
    ],
)
def test_origins(value: str, normalised: str, loopback: bool) -> None:
    origin = parse_origin(value)
    assert origin is not None
    assert (str(origin), origin.host.is_loopback) == (normalised, loopback)


@pytest.mark.parametrize(
    "value",
    [
        "null",
        "",
        "localhost",
        "ftp://localhost",
        "file://",
        "http://",
        "http://[::1].evil.com",
        "http://[::1].evil.com:80",
        "http://[::1]evil.com",
        "http://localhost@evil.com",
        "http://evil.com@localhost",
        "http://user:pw@localhost",
        "http://localhost/path",
        "http://localhost?x",
        "http://localhost#x",
        "http://localhost\\@evil.com",
        "http://localhost:99999",
        "http://localhost:80:80",
        "http://127.1",
        "http://0x7f000001",
        "http://[fe80::1%25lo]",
        "http:/localhost",
        "http:///localhost",
        "http://ｌｏｃａｌｈｏｓｔ",
    ],
)
def test_malformed_origins(value: str) -> None:
    assert parse_origin(value) is None


def test_configured_origins_may_be_unicode() -> None:
    configured = parse_origin("https://Bücher.example/", allow_unicode=True)
    sent = parse_origin("https://xn--bcher-kva.example")
    assert configured is not None
    assert configured == sent


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.4", False),
        ("[::1]", False),  # a bind address is written without brackets
        ("localhost.evil.com", False),
    ],
)
def test_bind_addresses(bind: str, loopback: bool) -> None:
    assert is_loopback_name(bind) is loopback
