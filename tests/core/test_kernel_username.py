"""The KERNEL_USERNAME of a session's kernel: its principal in a safe user-name form."""

from __future__ import annotations

import pytest

from python_mcp_server.core.sessions.kernel_username import (
    MAX_LENGTH,
    SAFE_USERNAME,
    KernelUsernames,
    check_fixed_username,
    safe_username,
)
from python_mcp_server.core.sessions.owners import session_key
from python_mcp_server.errors import ErrorCode, KernelUsernameRefusedError


@pytest.mark.parametrize("principal", ["alice", "team-7", "default", "a1"])
def test_safe_principals_are_sent_as_they_are(principal: str) -> None:
    assert safe_username(principal) == principal


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("alice@example.com", "alice-example-com-ff8d9819"),
        ("Alice", "alice-3bc51062"),
        ("9lives", "u-9lives-bc867356"),
        ("|x|", "x-aeb41586"),
    ],
)
def test_other_principals_are_mapped_with_a_digest(principal: str, expected: str) -> None:
    assert safe_username(principal) == expected


@pytest.mark.parametrize(
    "principal",
    ["alice@example.com", "ALICE", "a" * 128, "x.y:z+w|v", "__", "-", "1", "ümlaut@host"],
)
def test_every_mapped_name_is_safe(principal: str) -> None:
    name = safe_username(principal)
    assert SAFE_USERNAME.match(name), name
    assert len(name) <= MAX_LENGTH


def test_lossy_mappings_do_not_collide() -> None:
    names = {safe_username(p) for p in ("alice@example.com", "alice.example.com", "Alice")}
    assert len(names) == 3


def test_the_session_key_gives_the_principal() -> None:
    usernames = KernelUsernames()
    assert usernames.for_session("default") == "default"
    assert usernames.for_session(session_key("alice", "work")) == "alice"
    assert KernelUsernames("analyst").for_session(session_key("bob", "x")) == "analyst"


@pytest.mark.parametrize("principal", ["root", "admin", "nobody"])
def test_privileged_names_are_refused(principal: str) -> None:
    with pytest.raises(KernelUsernameRefusedError) as refused:
        KernelUsernames().for_session(session_key(principal, "s"))
    assert refused.value.code == ErrorCode.KERNEL_USERNAME_REFUSED
    assert "MCP_GATEWAY_KERNEL_USERNAME" in refused.value.message


@pytest.mark.parametrize("name", ["root", "Alice", "a b", "-x", "x-", "a" * 33, ""])
def test_a_fixed_name_must_be_safe_and_unprivileged(name: str) -> None:
    with pytest.raises(ValueError, match=r"safe user name|privileged"):
        check_fixed_username(name)
