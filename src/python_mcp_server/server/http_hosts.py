"""Exact parsing of the host names HTTP requests carry (``Host``, ``Origin``) and settings name.

A host is one of three things and nothing else (RFC 3986 section 3.2.2):

- an IPv6 literal in brackets that make up the *whole* host: ``[::1]`` (no zone id, no
  suffix: ``[::1].evil.com`` is not a host);
- a dotted-quad IPv4 address in canonical form: ``127.0.0.1`` (``127.1``, ``0x7f.0.0.1``,
  ``0177.0.0.1`` and ``2130706433`` are refused, not guessed at);
- a DNS name: ASCII labels of letters, digits and hyphens, 1-63 characters each, at most
  253 in all, the last label not a number (``1``, ``0x7f``); one trailing dot (the fully
  qualified form) is dropped; case is folded.

A port is 1 to 5 ASCII digits, 1-65535. Request headers must be ASCII (browsers send
internationalised names as punycode); names an operator configures may be Unicode and are
converted to punycode (IDNA) so they compare with what browsers send. Anything that does
not parse is None, and callers refuse it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")
_IPV4 = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}\Z")
_NUMBER = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)\Z")  # WHATWG: a host ending in a number
_IPV6_CHARS = re.compile(r"[0-9a-f:.]+\Z")
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Host:
    """A parsed host: ``name`` is lowercase ASCII, an IPv6 address without brackets."""

    name: str
    port: int | None = None

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The IP address when the host is a literal one."""
        try:
            return ipaddress.ip_address(self.name)
        except ValueError:
            return None

    @property
    def is_loopback(self) -> bool:
        """Whether the host means this machine: ``localhost``, ``*.localhost``, 127/8, ::1."""
        address = self.address
        if address is None:
            return self.name == "localhost" or self.name.endswith(".localhost")
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback

    @property
    def bracketed(self) -> str:
        """The host as written in a URL or Host header (IPv6 in brackets)."""
        return f"[{self.name}]" if ":" in self.name else self.name


def _port(text: str) -> int | None:
    if not _PORT.match(text):
        return None
    port = int(text)
    return port if 0 < port <= 65535 else None


def parse_name(text: str, *, allow_unicode: bool = False) -> str | None:
    """A bare host (no brackets, no port), normalised; None when it is not a host."""
    if not text or text != text.strip():
        return None
    if not text.isascii():
        if not allow_unicode:
            return None
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    name = text.lower()
    if ":" in name:  # only an IPv6 address has colons
        if not _IPV6_CHARS.match(name):
            return None  # zone ids (``%eth0``) and anything else
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            return None
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return None
    if _IPV4.match(name):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            return None
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels) or _NUMBER.match(labels[-1]):
        return None  # a numeric last label is an address in a form we do not guess
    return name


def parse_authority(text: str, *, allow_unicode: bool = False) -> Host | None:
    """``host[:port]`` as in a Host header or a URL's authority (no userinfo)."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        inside, rest = text[1:close], text[close + 1 :]
        if ":" not in inside:
            return None  # brackets hold IPv6 and nothing else
        name = parse_name(inside)
        if name is None:
            return None
    else:
        inside, colon, port_text = text.partition(":")
        rest = colon + port_text
        name = parse_name(inside, allow_unicode=allow_unicode)
        if name is None or ":" in name:
            return None
    if not rest:
        return Host(name)
    if not rest.startswith(":"):
        return None  # ``[::1].evil.com``, ``[::1]x``
    port = _port(rest[1:])
    return None if port is None else Host(name, port)


def parse_host_header(value: str) -> Host | None:
    """The ``Host`` header of a request; None when malformed."""
    return parse_authority(value)


@dataclass(frozen=True)
class Origin:
    """A web origin: scheme, host and port (the scheme's default when not written)."""

    scheme: str
    host: Host

    @property
    def port(self) -> int:
        return self.host.port or DEFAULT_PORTS[self.scheme]

    def __str__(self) -> str:
        text = f"{self.scheme}://{self.host.bracketed}"
        return text if self.port == DEFAULT_PORTS[self.scheme] else f"{text}:{self.port}"


def parse_origin(value: str, *, allow_unicode: bool = False) -> Origin | None:
    """``http(s)://host[:port]`` (an ``Origin`` header, or a configured origin with an
    optional trailing ``/``); None for anything else, ``null`` included."""
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        return None
    if rest.endswith("/"):
        rest = rest[:-1]
    if any(c in rest for c in "/?#@\\"):
        return None  # paths, queries, fragments and userinfo have no place in an origin
    host = parse_authority(rest, allow_unicode=allow_unicode)
    return None if host is None else Origin(scheme, host)


def is_loopback_name(text: str) -> bool:
    """Whether a bare host or bind address (``127.0.0.1``, ``::1``, ``localhost``) is loopback."""
    name = parse_name(text.strip())
    return name is not None and Host(name).is_loopback
