"""KernelChannels over a gateway's websocket ``/api/kernels/{id}/channels``.

Jupyter Kernel/Enterprise Gateway relay every channel of a kernel over one websocket:
each text frame is a JSON message with a ``"channel"`` field (the original, unsigned
protocol; the gateway signs what it forwards to the kernel). Messages are built with
``jupyter_client.session.Session`` exactly as ``zmq_channels`` builds them.

Latency: the gateway writes each message as its own small frame and, stock, leaves
Nagle's algorithm on, so the second frame of a reply waits for the ACK of the first
while Linux delays that ACK by up to 40 ms. The client socket therefore re-arms
``TCP_QUICKACK`` after every read (Linux clears it on its own) and sets ``TCP_NODELAY``.

The gateway also says things about the kernel's life on this socket, which
``on_event`` receives: ``restarting``/``dead`` status messages (the gateway restarted a
kernel that died, or gave up), ``shutdown_reply`` messages (someone shut the kernel down
or restarted it through the REST API) and the socket closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from python_mcp_server.errors import GatewayError
from python_mcp_server.infra.kernels.base import (
    Channel,
    ClosedHandler,
    KernelChannels,
    Message,
    MessageHandler,
)
from python_mcp_server.infra.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

#: What the gateway reports about the kernel: restarted after dying, dead for good,
#: restarted or shut down through REST (a shutdown_reply nobody here asked for), or the
#: websocket closed.
KernelEvent = Literal["restarting", "dead", "restart", "shutdown", "closed"]
EventHandler = Callable[[KernelEvent, str], None]

_CHANNELS: frozenset[str] = frozenset({"shell", "iopub", "stdin", "control"})
_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _set_tcp_option(transport: asyncio.BaseTransport, option: int) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, 1)


class LowLatencyConnection(ClientConnection):
    """A websocket client connection with no-delay and quick ACKs on its TCP socket."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _set_tcp_option(transport, socket.TCP_NODELAY)
        if _TCP_QUICKACK is not None:
            _set_tcp_option(transport, _TCP_QUICKACK)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if _TCP_QUICKACK is not None and self.transport is not None:
            _set_tcp_option(self.transport, _TCP_QUICKACK)


def lifecycle_event(channel: str, message: Message) -> KernelEvent | None:
    """The kernel life event a gateway message announces, if any."""
    if channel != "iopub":
        return None
    msg_type = message.get("header", {}).get("msg_type")
    content = message.get("content") or {}
    if msg_type == "status" and not message.get("parent_header"):
        state = content.get("execution_state")
        if state == "restarting":
            return "restarting"
        if state == "dead":
            return "dead"
    if msg_type == "shutdown_reply":
        return "restart" if content.get("restart") else "shutdown"
    return None


class WebsocketKernelChannels(KernelChannels):
    """The four Jupyter channels of one gateway kernel, multiplexed on one websocket."""

    def __init__(self, connection: ClientConnection, on_event: EventHandler) -> None:
        self._connection = connection
        self._on_event = on_event
        # The gateway signs what it forwards with its own key; this one only keeps
        # jupyter_client from warning about unsigned messages (nothing here is signed).
        self._session = Session(key=secrets.token_bytes(16), username="python-mcp-server")
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        headers: Mapping[str, str],
        on_event: EventHandler,
        timeout: float,
    ) -> WebsocketKernelChannels:
        """Connect to ``.../api/kernels/{id}/channels``; GatewayError when that fails."""
        target = f"{url}{'&' if '?' in url else '?'}session_id={uuid.uuid4().hex}"
        try:
            connection = await connect(
                target,
                additional_headers=dict(headers),
                compression=None,
                open_timeout=timeout,
                max_size=None,
                max_queue=None,
                create_connection=LowLatencyConnection,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise GatewayError(
                f"the gateway refused the kernel websocket with HTTP {status}"
                + (" (the kernel does not exist)" if status == 404 else "")
            ) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise GatewayError(f"could not open the kernel websocket: {exc!r}") from exc
        return cls(connection, on_event)

    def new_message(self, msg_type: str, content: Mapping[str, Any]) -> Message:
        return dict(self._session.msg(msg_type, dict(content)))

    def send(self, channel: Channel, message: Message) -> None:
        frame = dict(message)
        frame["channel"] = channel
        frame.setdefault("buffers", [])
        self._outbox.put_nowait(json.dumps(frame, default=json_default))

    def start(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        self._tasks.append(
            asyncio.create_task(self._read(on_message, on_closed), name="ws-kernel-read")
        )
        self._tasks.append(asyncio.create_task(self._write(), name="ws-kernel-write"))

    async def _write(self) -> None:
        while True:
            frame = await self._outbox.get()
            try:
                await self._connection.send(frame)
            except ConnectionClosed:
                return  # the reader reports the close

    async def _read(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        reason = "the gateway closed the kernel websocket"
        try:
            async for frame in self._connection:
                try:
                    message = _decode(frame)
                    channel = message.pop("channel")
                except (ValueError, KeyError, TypeError, AttributeError):
                    logger.warning("dropped an undecodable gateway message")
                    continue
                if channel not in _CHANNELS:
                    continue
                try:
                    event = lifecycle_event(channel, message)
                    on_message(channel, message)
                except Exception:  # one bad message must not stop the channel
                    logger.exception("dropped a %s message its handler failed on", channel)
                    continue
                if event is not None:
                    self._on_event(event, _describe(event))
        except ConnectionClosed as exc:
            reason = f"the kernel websocket closed ({exc})"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken connection must not kill the session silently
            reason = f"the kernel websocket failed: {exc!r}"
        if not self._closing:
            on_closed(reason)
            self._on_event("closed", reason)

    async def close(self) -> None:
        self._closing = True
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._connection.close(), 2.0)


def _decode(frame: str | bytes) -> Message:
    """One websocket frame as a message; ValueError when it is not a well-formed one."""
    message = json.loads(frame)
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    for part in ("header", "parent_header", "content"):
        if not isinstance(message.get(part, {}), dict):
            raise ValueError(f"{part} is not an object")
    if not isinstance(message.get("header", {}).get("msg_type"), str):
        raise ValueError("the header has no msg_type")
    return message


def _describe(event: KernelEvent) -> str:
    return {
        "restarting": "the kernel process died; the gateway restarted it",
        "dead": "the kernel process died and the gateway could not restart it",
        "restart": "the kernel was restarted through the gateway",
        "shutdown": "the kernel was shut down through the gateway",
        "closed": "the kernel websocket closed",
    }[event]
