"""KernelChannels over ZeroMQ, for kernels reachable through a connection file.

Each socket's file descriptor is watched by the event loop itself (``add_reader``): when it
signals, every message waiting on that socket is read without blocking, decoded and handed
to the session's callback, so replies are matched by ``parent_header.msg_id`` upstream and
nothing is polled on a timer. No task, future or pyzmq asyncio wrapper is made per message.

The descriptor is an edge: any operation on the socket that processes its pending commands
(a send, or a read of its events) can consume the signal while a reply already waits. So
after every send the socket is looked at again once the loop is free, and a wake-up reads
until the socket says it is empty (after which the next arrival signals again). A read that
found many messages hands the rest to a later turn of the loop instead of starving it. A send
never blocks: one the socket cannot take yet waits, in order, for its next wake-up. A
malformed or forged message (kernel code holds the key) is dropped and logged; it never stops
a channel.

Messages are framed and signed as ``Session.serialize`` frames them, byte for byte, with one
JSON encoder made once (``json.dumps`` with options builds one per part, four per message)
and the session's HMAC key held here (``Session.sign`` reads it through a trait on every
message); a message those cannot encode (a value JSON does not take as it is) goes through
``Session.serialize`` itself, which cleans it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session

from python_mcp_server.infra.kernels.base import (
    Channel,
    ClosedHandler,
    KernelChannels,
    Message,
    MessageHandler,
)

logger = logging.getLogger(__name__)

#: Separates routing identities from the signed message parts.
_DELIMITER = b"<IDS|MSG>"

_SOCKET_TYPES: dict[Channel, int] = {
    "shell": zmq.DEALER,
    "iopub": zmq.SUB,
    "stdin": zmq.DEALER,
    "control": zmq.DEALER,
}


def _endpoint(info: Mapping[str, Any], channel: Channel) -> str:
    port = info[f"{channel}_port"]
    if info["transport"] == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"tcp://{info['ip']}:{port}"


#: Messages read in one wake-up of a socket before the loop gets a turn.
BURST = 64
_POLLIN = int(zmq.POLLIN)
#: The socket option read before each read (a plain int: pyzmq's ``get`` makes an enum).
_EVENTS = int(zmq.EVENTS)
#: The signed parts of most messages' metadata.
_EMPTY_OBJECT = b"{}"


class ZmqKernelChannels(KernelChannels):
    """The four Jupyter channels of one kernel as zmq.asyncio sockets."""

    def __init__(self, connection_info: Mapping[str, Any], context: zmq.asyncio.Context) -> None:
        key = connection_info["key"]
        self._session = Session(
            key=key if isinstance(key, bytes) else str(key).encode(),
            signature_scheme=str(connection_info.get("signature_scheme", "hmac-sha256")),
        )
        #: The key's HMAC, copied for each message (None: messages are not signed).
        self._auth = self._session.auth
        #: ``Session.pack``'s JSON (``jupyter_client.session.json_packer``), made once.
        self._encode = json.JSONEncoder(
            ensure_ascii=False, allow_nan=False, default=json_default
        ).encode
        #: ``json.loads`` without its per-call checks of its options.
        self._loads = json.JSONDecoder().decode
        #: Plain sockets: the loop watches their descriptors (see the module docstring).
        self._sockets: dict[Channel, zmq.Socket[bytes]] = {}
        identity = self._session.bsession
        self._monitors: dict[Channel, zmq.asyncio.Socket] = {}
        #: Frames of sends the socket could not take yet, oldest first.
        self._unsent: dict[Channel, deque[list[Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watched: list[int] = []
        self._on_message: MessageHandler | None = None
        self._on_closed: ClosedHandler | None = None
        self._closed = False
        for channel, kind in _SOCKET_TYPES.items():
            # Made by the context (which closes it if it is destroyed first), plain class.
            sock = cast("zmq.Socket[bytes]", context.socket(kind, socket_class=zmq.Socket))  # type: ignore[arg-type]
            sock.linger = 0
            sock.setsockopt(zmq.RECONNECT_IVL, 10)
            # A ROUTER drops messages to peers whose handshake it has not finished, so an
            # input_request could vanish: watch every handshake until wait_connected.
            # (The monitor is made by the context too: an asyncio socket.)
            monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            self._monitors[channel] = cast(zmq.asyncio.Socket, monitor)
            if kind == zmq.DEALER:
                sock.setsockopt(zmq.IDENTITY, identity)
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(_endpoint(connection_info, channel))
            self._sockets[channel] = sock
            self._unsent[channel] = deque()

    async def wait_connected(self, timeout: float) -> None:
        from zmq.utils.monitor import recv_monitor_message

        async def handshake(monitor: zmq.asyncio.Socket) -> None:
            while True:
                event = await recv_monitor_message(monitor)
                if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return

        try:
            await asyncio.wait_for(
                asyncio.gather(*(handshake(m) for m in self._monitors.values())), timeout
            )
        finally:
            self._stop_monitors()

    def _stop_monitors(self) -> None:
        for channel, monitor in self._monitors.items():
            with contextlib.suppress(zmq.ZMQError):
                self._sockets[channel].disable_monitor()
            monitor.close(linger=0)
        self._monitors.clear()

    def new_message(self, msg_type: str, content: Mapping[str, Any]) -> Message:
        return dict(self._session.msg(msg_type, dict(content)))

    def _sign(self, parts: list[bytes]) -> bytes:
        """``Session.sign``: the hex HMAC of the four signed parts (b"" without a key)."""
        if self._auth is None:
            return b""
        digest = self._auth.copy()
        for part in parts:
            digest.update(part)
        return digest.hexdigest().encode()

    def serialize(self, message: Message) -> list[Any]:
        """The frames ``Session.serialize(message)`` gives (without routing identities)."""
        content = message.get("content")
        if not isinstance(content, dict):
            return cast("list[Any]", self._session.serialize(message))
        encode = self._encode
        try:
            parts = [
                encode(part).encode("utf8", errors="surrogateescape")
                for part in (
                    message["header"],
                    message["parent_header"],
                    message["metadata"],
                    content,
                )
            ]
        except (TypeError, ValueError):  # not JSON as it is: Session cleans it first
            return cast("list[Any]", self._session.serialize(message))
        return [_DELIMITER, self._sign(parts), *parts]

    def send(self, channel: Channel, message: Message) -> None:
        frames: list[Any] = self.serialize(message)
        frames.extend(message.get("buffers") or ())
        unsent = self._unsent[channel]
        if self._closed:
            logger.debug("a kernel message was not sent: the channels are closed")
            return
        if not unsent:
            try:
                self._sockets[channel].send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:  # the socket is full: the frames wait for its next wake-up
                unsent.append(frames)
            except zmq.ZMQError as exc:
                logger.debug("a kernel message was not sent: %s", exc)
                return
        else:
            unsent.append(frames)
        if self._loop is not None:  # the send may have taken the descriptor's signal
            self._loop.call_soon(self._ready, channel)

    def start(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        self._on_message, self._on_closed = on_message, on_closed
        self._loop = loop = asyncio.get_running_loop()
        for channel, sock in self._sockets.items():
            descriptor = sock.fileno()
            loop.add_reader(descriptor, self._ready, channel)
            self._watched.append(descriptor)
            loop.call_soon(self._ready, channel)  # what arrived before the watch began

    def _ready(self, channel: Channel) -> None:
        """The socket may have changed: send what waits, then read what arrived."""
        if self._closed:
            return
        sock = self._sockets[channel]
        unsent = self._unsent[channel]
        try:
            while unsent:
                sock.send_multipart(unsent[0], zmq.NOBLOCK)
                unsent.popleft()
        except zmq.Again:
            pass
        except zmq.ZMQError as exc:
            unsent.clear()
            logger.debug("a kernel message was not sent: %s", exc)
        for _ in range(BURST):
            try:
                # Reading the events tells whether a message waits (cheaper than a read
                # that fails) and, when none does, re-arms the descriptor for the next one.
                if not cast(int, sock.getsockopt(_EVENTS)) & _POLLIN:
                    return
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:  # empty after all: the descriptor signals the next arrival
                return
            except zmq.ZMQError as exc:
                self._stop_reading()
                if self._on_closed is not None:
                    self._on_closed(f"{channel} channel closed: {exc}")
                return
            self._deliver(channel, frames)
            if self._closed:  # a handler closed the channels
                return
        assert self._loop is not None
        self._loop.call_soon(self._ready, channel)  # more may wait: after others' turn

    def _deliver(self, channel: Channel, frames: list[bytes]) -> None:
        try:
            message = self._decode(frames)
        except Exception:  # a malformed or badly signed message is dropped
            logger.warning("dropped an undecodable %s message", channel)
            return
        try:
            assert self._on_message is not None
            self._on_message(channel, message)
        except Exception:  # one bad message must not stop the channel
            logger.exception("dropped a %s message its handler failed on", channel)

    def _stop_reading(self) -> None:
        if self._loop is not None:
            for descriptor in self._watched:
                self._loop.remove_reader(descriptor)
        self._watched.clear()

    def _decode(self, frames: list[bytes]) -> Message:
        """Check the HMAC and unpack a message.

        Leaner than ``Session.deserialize``: header dates stay strings (nothing here reads
        them) and no per-message digest history is kept (the sockets are private IPC).
        """
        try:
            parts = frames[frames.index(_DELIMITER) + 1 :]
        except ValueError:
            raise ValueError("no message delimiter") from None
        if len(parts) < 5:
            raise ValueError("malformed message")
        if self._auth is not None:
            expected = self._sign(parts[1:5])
            if not hmac.compare_digest(parts[0], expected):
                raise ValueError("invalid signature")
        loads = self._loads
        header = loads(parts[1].decode())
        parent = loads(parts[2].decode())
        metadata = {} if parts[3] == _EMPTY_OBJECT else loads(parts[3].decode())
        content = loads(parts[4].decode())
        if not all(isinstance(p, dict) for p in (header, parent, metadata, content)):
            raise ValueError("a message part is not a JSON object")
        if not isinstance(header.get("msg_type"), str):
            raise ValueError("the header has no msg_type")
        return {
            "header": header,
            "msg_id": header.get("msg_id"),
            "msg_type": header["msg_type"],
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "buffers": [memoryview(part) for part in parts[5:]],
        }

    async def close(self) -> None:
        self._closed = True
        self._stop_reading()  # before the sockets close: their descriptors go with them
        self._stop_monitors()
        for channel, sock in self._sockets.items():
            self._unsent[channel].clear()
            sock.close(linger=0)
