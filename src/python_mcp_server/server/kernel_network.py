"""The server's kernel network policy, from the settings: mode, domains, ports, pins.

Under ``allowlist`` the domains are the package index installs use (``MCP_PIP_INDEX_URL``,
default PyPI with its file host; extra indexes; find-links pages; ``PIP_INDEX_URL`` and
``PIP_EXTRA_INDEX_URL`` kernels inherit) plus ``MCP_KERNEL_NETWORK_DOMAINS``. Ports are 80
and 443 plus any port those index URLs name. Server-side installs reach only the index
hosts, through the same proxy (``installer_access``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from python_mcp_server.core.sessions.network_policy import narrow
from python_mcp_server.errors import NetworkPolicyRefusedError
from python_mcp_server.infra.kernels.base import KernelLauncher
from python_mcp_server.infra.kernels.sandbox import BwrapLauncher
from python_mcp_server.infra.network.access import DEFAULT_PORTS, NetworkAccess, normalize_domain
from python_mcp_server.settings import Settings

PYPI = ("https://pypi.org/simple", "https://files.pythonhosted.org")


def _split(value: str | None) -> list[str]:
    return [item for item in (value or "").replace(" ", ",").split(",") if item.strip()]


def index_urls(settings: Settings) -> list[str]:
    """Every package index URL an install (server-side or from a kernel) may use."""
    urls = _split(settings.pip_index_url) or list(PYPI)
    urls += _split(settings.pip_extra_index_url) + _split(settings.pip_find_links)
    urls += _split(os.environ.get("PIP_INDEX_URL")) + _split(os.environ.get("PIP_EXTRA_INDEX_URL"))
    return [url for url in urls if urlsplit(url).scheme in ("http", "https")]


def _index_hosts(settings: Settings) -> tuple[set[str], set[int]]:
    """The index URLs' host names and ports (80 and 443 always)."""
    domains: set[str] = set()
    ports = set(DEFAULT_PORTS)
    for url in index_urls(settings):
        parts = urlsplit(url)
        if parts.hostname:
            domains.add(normalize_domain(parts.hostname))
        try:
            if parts.port:
                ports.add(parts.port)
        except ValueError:
            continue
    return domains, ports


def _pins(settings: Settings) -> list[tuple[str, str]]:
    pinned = []
    for entry in _split(settings.kernel_network_hosts):
        name, sep, address = entry.partition("=")
        if sep and name.strip() and address.strip():
            pinned.append((normalize_domain(name), address.strip()))
    return pinned


def network_access(settings: Settings) -> NetworkAccess:
    """The server's policy, the widest any session gets."""
    domains, ports = _index_hosts(settings)
    domains.update(normalize_domain(d) for d in _split(settings.kernel_network_domains))
    return NetworkAccess(
        settings.kernel_network, frozenset(domains), frozenset(ports), tuple(_pins(settings))
    )


def installer_access(settings: Settings) -> NetworkAccess | None:
    """What a sandboxed install reaches through the egress proxy, whatever the kernels' mode:
    the index hosts only (index, extra indexes, find-links pages) on their ports, with the
    operator's pins; an index the operator named by address or as ``localhost`` is pinned
    to that address, and index names may resolve to private addresses (a LAN mirror, never
    loopback or link-local). None when no index is on the network (``file://`` or local folders):
    an install then gets no network at all."""
    domains, ports = _index_hosts(settings)
    if not domains:
        return None
    pinned = _pins(settings)
    named = {name for name, _ in pinned}
    for host in sorted(domains - named):
        if host == "localhost":
            pinned.append((host, "127.0.0.1"))
        elif _is_address(host):
            pinned.append((host, host))
    return NetworkAccess("allowlist", frozenset(domains), frozenset(ports), tuple(pinned), lan=True)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def session_network(
    launcher: KernelLauncher, mode: str | None, domains: Sequence[str] | None
) -> NetworkAccess | None:
    """What a new session asked for, checked against the server's policy (None: nothing)."""
    if mode is None and not domains:
        return None
    if not isinstance(launcher, BwrapLauncher):
        raise NetworkPolicyRefusedError(
            f"kernels here run without the sandbox ({launcher.name}), so no network policy "
            "can be enforced for a session"
        )
    return narrow(launcher.config.network, mode, domains)
