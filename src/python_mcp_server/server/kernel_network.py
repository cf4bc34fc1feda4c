"""The server's kernel network policy, from the settings: mode, domains, ports, pins.

Under ``allowlist`` the domains are the package index installs use (``MCP_PIP_INDEX_URL``,
default PyPI with its file host; extra indexes; find-links pages; ``PIP_INDEX_URL`` and
``PIP_EXTRA_INDEX_URL`` kernels inherit) plus ``MCP_KERNEL_NETWORK_DOMAINS``. Ports are 80
and 443 plus any port those index URLs name.
"""

from __future__ import annotations

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


def network_access(settings: Settings) -> NetworkAccess:
    """The server's policy, the widest any session gets."""
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
    domains.update(normalize_domain(d) for d in _split(settings.kernel_network_domains))
    pinned = []
    for entry in _split(settings.kernel_network_hosts):
        name, sep, address = entry.partition("=")
        if sep and name.strip() and address.strip():
            pinned.append((normalize_domain(name), address.strip()))
    return NetworkAccess(
        settings.kernel_network, frozenset(domains), frozenset(ports), tuple(pinned)
    )


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
