"""KernelChannels over ZeroMQ, for kernels reachable through a connection file.

One reader task per socket hands every decoded message to the session's callback, so
replies are matched by ``parent_header.msg_id`` upstream and nothing is polled on a timer.

Sends go through the very ``zmq.asyncio`` socket the reader waits on. Never through
``Session.send``: it sends on a plain shadow of the socket, and a send there can consume
the socket's edge-triggered readiness, so the asyncio reader is never woken while replies
sit unread (overlapping requests then hang to their timeout). Messages are signed with
``Session.serialize`` and sent with ``send_multipart`` here. A malformed or forged message
(kernel code holds the key) is dropped and logged; it never stops a reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session

from python_mcp_server.infra.kernels.base import (
    Channel,
    ClosedHandler,
    KernelChannels,
    Message,
    MessageHandler,
)
from python_mcp_server.infra.tasks import cancel_and_wait

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


def _log_send_failure(sent: asyncio.Future[Any]) -> None:
    """A send that failed (the socket closed under it) is logged, never left unretrieved."""
    if not sent.cancelled() and sent.exception() is not None:
        logger.debug("a kernel message was not sent: %s", sent.exception())


class ZmqKernelChannels(KernelChannels):
    """The four Jupyter channels of one kernel as zmq.asyncio sockets."""

    def __init__(self, connection_info: Mapping[str, Any], context: zmq.asyncio.Context) -> None:
        key = connection_info["key"]
        self._session = Session(
            key=key if isinstance(key, bytes) else str(key).encode(),
            signature_scheme=str(connection_info.get("signature_scheme", "hmac-sha256")),
        )
        self._sockets: dict[Channel, zmq.asyncio.Socket] = {}
        identity = self._session.bsession
        self._monitors: dict[Channel, zmq.asyncio.Socket] = {}
        for channel, kind in _SOCKET_TYPES.items():
            sock = context.socket(kind)
            sock.linger = 0
            sock.setsockopt(zmq.RECONNECT_IVL, 10)
            # A ROUTER drops messages to peers whose handshake it has not finished, so an
            # input_request could vanish: watch every handshake until wait_connected.
            self._monitors[channel] = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            if kind == zmq.DEALER:
                sock.setsockopt(zmq.IDENTITY, identity)
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(_endpoint(connection_info, channel))
            self._sockets[channel] = sock
        self._tasks: list[asyncio.Task[None]] = []

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

    def send(self, channel: Channel, message: Message) -> None:
        frames: list[Any] = self._session.serialize(message)
        frames.extend(message.get("buffers") or ())
        sent = asyncio.ensure_future(self._sockets[channel].send_multipart(frames))
        sent.add_done_callback(_log_send_failure)

    def start(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        for channel, sock in self._sockets.items():
            self._tasks.append(
                asyncio.create_task(
                    self._read(channel, sock, on_message, on_closed), name=f"zmq-{channel}"
                )
            )

    async def _read(
        self,
        channel: Channel,
        sock: zmq.asyncio.Socket,
        on_message: MessageHandler,
        on_closed: ClosedHandler,
    ) -> None:
        try:
            while True:
                frames = await sock.recv_multipart()
                try:
                    message = self._decode(frames)
                except Exception:  # a malformed or badly signed message is dropped
                    logger.warning("dropped an undecodable %s message", channel)
                    continue
                try:
                    on_message(channel, message)
                except Exception:  # one bad message must not stop the channel
                    logger.exception("dropped a %s message its handler failed on", channel)
        except asyncio.CancelledError:
            raise
        except zmq.ZMQError as exc:
            on_closed(f"{channel} channel closed: {exc}")

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
        if self._session.auth is not None:
            expected = self._session.sign(parts[1:5])
            if not hmac.compare_digest(parts[0], expected):
                raise ValueError("invalid signature")
        header, parent, metadata, content = (json.loads(part) for part in parts[1:5])
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
        try:
            await cancel_and_wait(*self._tasks)
        finally:  # the sockets close even when our caller is cancelled meanwhile
            self._tasks.clear()
            self._stop_monitors()
            for sock in self._sockets.values():
                sock.close(linger=0)
