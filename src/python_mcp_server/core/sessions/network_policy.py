"""A session's network access: the server's policy, or a narrower one the session asks for.

Modes order from narrowest to widest: ``deny`` < ``allowlist`` < ``allow``. A session may
ask for any mode up to the server's; under ``allowlist`` it may name domains, each of
which the server's access must cover. Anything wider is refused with
``NETWORK_POLICY_REFUSED``, never silently narrowed, so the caller knows what it got.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from python_mcp_server.errors import InvalidInputError, NetworkPolicyRefusedError
from python_mcp_server.infra.network.access import MODES, NetworkAccess, normalize_domain


def narrow(
    server: NetworkAccess, mode: str | None, domains: Sequence[str] | None = None
) -> NetworkAccess | None:
    """The access a session gets; None when it asks for nothing (the server's own)."""
    if mode is None and not domains:
        return None
    wanted_mode = next((m for m in MODES if m == (mode or "allowlist")), None)
    if wanted_mode is None:
        raise InvalidInputError(f"network must be one of {', '.join(MODES)}, not {mode!r}")
    if MODES.index(wanted_mode) > server.width:
        raise NetworkPolicyRefusedError(
            f"network {wanted_mode!r} is wider than this server's {server.mode!r} "
            "(MCP_KERNEL_NETWORK); ask for the server's policy or a narrower one"
        )
    if wanted_mode != "allowlist":
        if domains:
            raise InvalidInputError("network_domains applies only to network='allowlist'")
        return replace(server, mode=wanted_mode)
    if not domains:
        return replace(server, mode="allowlist")
    wanted = frozenset(normalize_domain(d) for d in domains if d.strip())
    refused = sorted(d for d in wanted if not server.covers(d))
    if refused:
        raise NetworkPolicyRefusedError(
            f"the server's network policy ({server.describe()}) does not cover "
            f"{', '.join(refused)}; a session may only narrow it"
        )
    return NetworkAccess("allowlist", wanted, server.ports, server.pinned)
