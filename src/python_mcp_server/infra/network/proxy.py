"""The egress proxy: HTTP CONNECT and plain HTTP, served on one Unix socket per kernel.

A sandboxed kernel under ``allowlist`` has no network of its own; a forwarder inside its
namespace hands each TCP connection to this proxy's socket (bound into the sandbox), or,
for a kernel forked from a sandboxed template, the proxy serves the TCP socket its init
made listening on the kernel's own loopback (``adopt``). The proxy decides, from that
kernel's ``NetworkAccess`` alone:

1. the port must be one allowed (80 and 443, plus the package index's own);
2. the host must be a name on the allowlist (IP literals are refused: name a domain;
   only an address the server itself pinned, an install's index named by address, passes);
3. the name resolves (pinned address, else DNS) and only a public address is used, so a
   name that resolves to loopback, a private range or link-local (cloud metadata) is
   refused, and the address checked is the address connected to (no second lookup);
   an access marked ``lan`` (installs) may reach private addresses, never loopback or
   link-local.

A refusal is an immediate ``403`` whose body says why; a failed connection is ``502``.
After the decision the proxy only copies bytes both ways: every byte of a connection goes
to the one destination decided for its first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from python_mcp_server.infra.network.access import NetworkAccess, normalize_domain
from python_mcp_server.infra.network.addresses import is_on_host, is_public
from python_mcp_server.infra.tasks import retrieve_outcomes

logger = logging.getLogger(__name__)

#: (host, port) -> candidate IP addresses, in preference order.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_HEAD_BYTES = 64 * 1024
MAX_CONNECTIONS = 64
_CHUNK = 64 * 1024
_HOP_BY_HOP = (b"proxy-connection", b"proxy-authorization")


async def system_resolver(host: str, port: int) -> list[str]:
    """DNS (getaddrinfo) in the server's own network."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Decision:
    """Where a request may go (``address``), or why not (``refusal``)."""

    address: str | None = None
    refusal: str | None = None


def split_authority(text: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` of a CONNECT target."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c in host for c in "[]@/\\ \t"):
        return None
    return host, int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def decide(access: NetworkAccess, host: str, port: int, resolver: Resolver) -> Decision:
    """The proxy's whole policy, from the kernel's access value."""
    if access.mode != "allowlist":
        return Decision(refusal=f"this kernel's network policy is {access.mode}")
    if port not in access.ports:
        allowed = ", ".join(map(str, sorted(access.ports)))
        return Decision(refusal=f"port {port} is not allowed (allowed: {allowed})")
    if _is_ip(host) and access.pinned_address(host) is None:
        return Decision(refusal=f"{host} is an address; only allowlisted domains are reachable")
    try:
        host = normalize_domain(host)
    except UnicodeError:
        return Decision(refusal="the host is not a valid name")
    if not access.permits_name(host):
        return Decision(refusal=f"{host} is not on the kernel network allowlist")
    pinned = access.pinned_address(host)
    if pinned is not None:
        return Decision(address=pinned)  # chosen by the operator: trusted as given
    try:
        candidates = await asyncio.wait_for(resolver(host, port), 10)
    except (OSError, asyncio.TimeoutError, UnicodeError) as exc:
        return Decision(refusal=f"{host} does not resolve: {exc}")
    public = [
        address
        for address in candidates
        if is_public(address) or (access.lan and not is_on_host(address))
    ]
    if not public:
        shown = ", ".join(candidates[:4]) or "nothing"
        return Decision(refusal=f"{host} resolves to {shown}: not a public address")
    return Decision(address=public[0])


class ProxyListener:
    """One kernel's socket: its own access value, its own connections."""

    def __init__(self, path: Path, access: NetworkAccess, resolver: Resolver) -> None:
        self.path = path
        self.access = access
        self._resolver = resolver
        self._server: asyncio.AbstractServer | None = None
        #: Sockets handed over by the kernel (``adopt``), served like the Unix socket.
        self._adopted: list[asyncio.AbstractServer] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of an earlier kernel (server-owned folder)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o666)  # the kernel's user (not ours) connects to it
            sock.listen(MAX_CONNECTIONS)
        except OSError:
            sock.close()
            raise
        self._server = await asyncio.start_unix_server(
            self._accept, sock=sock, limit=MAX_HEAD_BYTES
        )

    async def adopt(self, sock: socket.socket) -> None:
        """Also serve ``sock``, a TCP socket listening on the kernel's own loopback (a
        forked sandboxed kernel's init makes it in the kernel's network namespace): its
        connections come from that kernel alone, and get this listener's access, with
        no forwarder in between."""
        try:
            server = await asyncio.start_server(self._accept, sock=sock, limit=MAX_HEAD_BYTES)
        except OSError:
            sock.close()
            raise
        self._adopted.append(server)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        task = asyncio.create_task(self._serve(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            target = _parse_head(head)
            if target is None:
                await _answer(writer, 400, "not a proxy request this proxy understands")
                return
            method, host, port, forward = target
            decision = await decide(self.access, host, port, self._resolver)
            if decision.address is None:
                logger.debug("egress refused: %s:%s: %s", host, port, decision.refusal)
                await _answer(writer, 403, f"python-mcp-server: {decision.refusal}")
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(decision.address, port, limit=_CHUNK), 15
                )
            except (OSError, asyncio.TimeoutError) as exc:
                await _answer(writer, 502, f"python-mcp-server: {host}:{port}: {exc or 'timeout'}")
                return
            upstream = up_writer
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(forward)
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.TimeoutError:
            with contextlib.suppress(OSError):
                await _answer(writer, 408, "python-mcp-server: no request")
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    async def aclose(self) -> None:
        for server in (self._server, *self._adopted):
            if server is not None:
                server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
            retrieve_outcomes(tasks)
        with contextlib.suppress(OSError):
            self.path.unlink()


def _parse_head(head: bytes) -> tuple[str, str, int, bytes] | None:
    """(method, host, port, request to forward) of a CONNECT or absolute-form request."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    try:
        method, target, version = (p.decode("ascii") for p in parts)
    except UnicodeDecodeError:
        return None
    if method == "CONNECT":
        authority = split_authority(target)
        return None if authority is None else (method, *authority, b"")
    try:
        url = urlsplit(target)
        port = url.port or 80
    except ValueError:
        return None
    if url.scheme != "http" or not url.hostname or url.username or url.password:
        return None
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    headers = b"".join(
        h + b"\r\n"
        for h in rest.split(b"\r\n")
        if h and h.split(b":", 1)[0].strip().lower() not in _HOP_BY_HOP
    )
    forward = f"{method} {path} {version}\r\n".encode("ascii") + headers + b"\r\n"
    return method, url.hostname, port, forward


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 502: "Bad Gateway"}
    body = (text + "\n").encode("utf-8", "replace")
    writer.write(
        f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
        + body
    )
    await writer.drain()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


class EgressProxy:
    """The server's egress proxy: one listener per sandboxed kernel under ``allowlist``."""

    def __init__(self, resolver: Resolver = system_resolver) -> None:
        self._resolver = resolver
        self._listeners: dict[Path, ProxyListener] = {}

    async def listen(self, path: Path, access: NetworkAccess) -> ProxyListener:
        listener = ProxyListener(path, access, self._resolver)
        await listener.start()
        self._listeners[path] = listener
        return listener

    async def adopt(self, path: Path, sock: socket.socket) -> None:
        """Serve ``sock`` too, for the kernel whose socket is ``path`` (``ProxyListener.adopt``)."""
        listener = self._listeners.get(path)
        if listener is None:
            sock.close()
            raise OSError(f"no egress listener at {path}")
        await listener.adopt(sock)

    async def close_listener(self, path: Path) -> None:
        listener = self._listeners.pop(path, None)
        if listener is not None:
            await listener.aclose()

    async def aclose(self) -> None:
        listeners = list(self._listeners)
        for path in listeners:
            await self.close_listener(path)
