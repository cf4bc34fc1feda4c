"""Which IP addresses a kernel's traffic may reach through the proxy: public ones only.

Loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, where
cloud metadata lives, and fe80::/10), shared (100.64/10), multicast, reserved and
unspecified addresses are not public. IPv6 forms that embed an IPv4 address (mapped
``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo) are judged by
the address they embed, so ``[::ffff:169.254.169.254]`` is no way around the rule.
An access marked ``lan`` (server-side installs: the operator's index may be a LAN mirror)
may also reach private and reserved addresses, never those ``is_on_host``.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, if it is one of the embedding forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public(address: IPAddress | str) -> bool:
    """Whether an address is globally routable unicast (and so no part of this host or LAN)."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public(inner)
    return ip.is_global and not ip.is_multicast


def is_on_host(address: IPAddress | str) -> bool:
    """Whether an address leads to this host or its link rather than to another machine:
    loopback, link-local (cloud metadata), unspecified or multicast (IPv4 embedded in IPv6
    judged as itself). Never reachable, even for a ``lan`` access."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return True
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_on_host(inner)
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast
