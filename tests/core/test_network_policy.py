"""Narrowing a session's network policy: narrower is granted, wider refused with a code."""

from __future__ import annotations

import pytest

from python_mcp_server.core.sessions.network_policy import narrow
from python_mcp_server.errors import InvalidInputError, NetworkPolicyRefusedError
from python_mcp_server.infra.network.access import NetworkAccess

INDEX = frozenset({"pypi.org", "files.pythonhosted.org", "*.corp.example"})


def server(mode: str) -> NetworkAccess:
    return NetworkAccess(mode, INDEX, pinned=(("pypi.org", "10.0.0.9"),))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("server_mode", "mode", "domains", "expected"),
    [
        ("allowlist", None, None, None),
        ("allowlist", "deny", None, ("deny", INDEX)),
        ("allowlist", "allowlist", None, ("allowlist", INDEX)),
        ("allowlist", None, ["PyPI.org."], ("allowlist", {"pypi.org"})),
        (
            "allowlist",
            "allowlist",
            ["a.corp.example", "*.b.corp.example"],
            ("allowlist", {"a.corp.example", "*.b.corp.example"}),
        ),
        ("allowlist", "allowlist", ["*.corp.example"], ("allowlist", {"*.corp.example"})),
        ("allow", "allowlist", None, ("allowlist", INDEX)),
        ("allow", "allowlist", ["example.org"], ("allowlist", {"example.org"})),
        ("allow", "deny", None, ("deny", INDEX)),
        ("deny", "deny", None, ("deny", INDEX)),
    ],
)
def test_narrower_is_granted(
    server_mode: str,
    mode: str | None,
    domains: list[str] | None,
    expected: tuple[str, set[str]] | None,
) -> None:
    got = narrow(server(server_mode), mode, domains)
    if expected is None:
        assert got is None
        return
    assert got is not None
    assert (got.mode, set(got.domains)) == (expected[0], set(expected[1]))
    assert got.pinned == server(server_mode).pinned


@pytest.mark.parametrize(
    ("server_mode", "mode", "domains"),
    [
        ("allowlist", "allow", None),
        ("deny", "allowlist", None),
        ("deny", "allow", None),
        ("deny", None, ["pypi.org"]),
        ("allowlist", None, ["example.org"]),
        ("allowlist", None, ["pypi.org", "evil.example"]),
        ("allowlist", None, ["corp.example"]),
        ("allowlist", None, ["*.example"]),
        ("allowlist", None, ["*.pypi.org"]),
    ],
)
def test_wider_is_refused(server_mode: str, mode: str | None, domains: list[str] | None) -> None:
    with pytest.raises(NetworkPolicyRefusedError):
        narrow(server(server_mode), mode, domains)


def test_bad_requests() -> None:
    with pytest.raises(InvalidInputError):
        narrow(server("allow"), "open", None)
    with pytest.raises(InvalidInputError):
        narrow(server("allow"), "deny", ["pypi.org"])
