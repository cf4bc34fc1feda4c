"""What one kernel's network may reach: a value, decided by the server, read by the proxy.

- ``deny``: a network namespace of its own with only loopback; nothing outside.
- ``allowlist``: the same namespace, plus a forwarder to the server's egress proxy, which
  connects only to the listed domains on the listed ports, and only at public addresses.
- ``allow``: the host's network, unfiltered.

A domain ``pypi.org`` matches that name exactly; ``*.example.com`` matches every name
below ``example.com`` (not the name itself). Pinned names resolve to the address given
(an operator's private mirror, or a test's loopback server) instead of through DNS; an
address pinned by the operator is trusted even when it is not public.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["deny", "allowlist", "allow"]
#: Modes from narrowest to widest.
MODES: tuple[Mode, ...] = ("deny", "allowlist", "allow")
DEFAULT_PORTS: frozenset[int] = frozenset({80, 443})


def normalize_domain(name: str) -> str:
    """Lowercase, without a trailing dot; Unicode names in their IDNA (punycode) form."""
    name = name.strip().rstrip(".").lower()
    if not name.isascii():
        name = name.encode("idna").decode("ascii")
    return name


def domain_matches(pattern: str, host: str) -> bool:
    """Whether a host name falls under an allowlist entry (exact, or ``*.`` for below)."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


@dataclass(frozen=True)
class NetworkAccess:
    """One kernel's network access."""

    mode: Mode = "allowlist"
    domains: frozenset[str] = frozenset()
    ports: frozenset[int] = DEFAULT_PORTS
    #: name -> IP address, consulted before DNS.
    pinned: tuple[tuple[str, str], ...] = field(default=())
    #: Names may resolve to private addresses too (never loopback or link-local).
    lan: bool = False

    @property
    def width(self) -> int:
        return MODES.index(self.mode)

    def permits_name(self, host: str) -> bool:
        """Whether ``allowlist`` lets a connection to this name (any port) through."""
        name = normalize_domain(host)
        return any(domain_matches(pattern, name) for pattern in self.domains)

    def covers(self, pattern: str) -> bool:
        """Whether an allowlist entry asks for no more than this access's entries allow."""
        if self.mode == "allow":
            return True
        if self.mode == "deny":
            return False
        if pattern.startswith("*."):
            return any(
                p == pattern or (p.startswith("*.") and domain_matches(p, pattern[2:]))
                for p in self.domains
            )
        return self.permits_name(pattern)

    def pinned_address(self, host: str) -> str | None:
        name = normalize_domain(host)
        return next((address for pinned, address in self.pinned if pinned == name), None)

    def describe(self) -> str:
        """``allowlist (pypi.org, files.pythonhosted.org)`` and the like, for health."""
        if self.mode != "allowlist":
            return self.mode
        return f"allowlist ({', '.join(sorted(self.domains)) or 'no domains'})"
