"""A send never strands a reply that already waits in a socket (the edge-trigger loss).

The channels' reader sleeps until the socket's file descriptor signals, and that signal is
an edge: any other operation on the socket that processes its pending commands (a send
that does not make the reader look again, as ``Session.send`` on the socket does) consumes
it, and a reply already queued is then never read. The tests here stand in for the kernel with real
sockets bound where a kernel's would be, hold the event loop while the reply arrives, and
send again before the loop looks: the very window in which the loss happens.

The second test runs the same rounds with that raw send and shows that the harness
reproduces the loss, so the first test would have caught it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio
from jupyter_client.session import Session

from python_mcp_server.infra.kernels.base import Channel, Message
from python_mcp_server.infra.kernels.zmq_channels import ZmqKernelChannels

KEY = b"edge-test-key-0123456789"
CHANNELS: tuple[Channel, ...] = ("shell", "iopub", "stdin", "control")
ROUNDS = 60
#: How long the loop is held after the reply is sent, so it has surely reached the
#: client's socket before the next send (it widens the window; it synchronises nothing).
HOLD_SECONDS = 0.003


@dataclass
class FakeKernel:
    """The kernel's side of the four channels, on a blocking context of its own."""

    context: zmq.Context[zmq.Socket[bytes]]
    sockets: dict[Channel, zmq.Socket[bytes]]
    session: Session

    def receive(self, channel: Channel) -> tuple[bytes, dict[str, Any]]:
        sock = self.sockets[channel]
        if not sock.poll(10_000):
            raise AssertionError(f"no request arrived on {channel}")
        frames = sock.recv_multipart()
        identity = frames[0]
        _, parts = self.session.feed_identities(frames[1:])
        return identity, self.session.deserialize(parts)

    def reply(self, channel: Channel, identity: bytes, request: dict[str, Any]) -> None:
        self.session.send(
            self.sockets[channel],
            "kernel_info_reply",
            {"status": "ok"},
            parent=request,
            ident=identity,
        )


@pytest.fixture
def kernel_side(tmp_path: Path) -> Iterator[tuple[FakeKernel, dict[str, Any]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    info: dict[str, Any] = {
        "transport": "ipc",
        "ip": str(tmp_path / "k"),
        "key": KEY,
        "signature_scheme": "hmac-sha256",
    }
    sockets: dict[Channel, zmq.Socket[bytes]] = {}
    for index, channel in enumerate(CHANNELS, 1):
        sock = context.socket(zmq.PUB if channel == "iopub" else zmq.ROUTER)
        sock.linger = 0
        sock.bind(f"ipc://{info['ip']}-{index}")
        info[f"{channel}_port"] = index
        sockets[channel] = sock
    yield FakeKernel(context, sockets, Session(key=KEY)), info
    context.destroy(linger=0)


class RawSendChannels(ZmqKernelChannels):
    """The old send path: ``Session.send`` on a plain shadow of the socket, which never
    tells the reader to look again."""

    def send(self, channel: Channel, message: Message) -> None:
        shadow = zmq.Socket.shadow(self._sockets[channel].underlying)
        self._session.send(shadow, message)


@pytest.fixture
async def context() -> AsyncIterator[zmq.asyncio.Context]:
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


async def _rounds(
    link: ZmqKernelChannels,
    kernel: FakeKernel,
    channel: Channel,
    wait: float,
    *,
    until_stranded: bool = False,
) -> tuple[int, int]:
    """Run the rounds (or only until one reply is stranded); return (delivered, stranded)."""
    replies: asyncio.Queue[str] = asyncio.Queue()

    def on_message(from_channel: Channel, message: Message) -> None:
        if from_channel == channel:
            replies.put_nowait(message["parent_header"].get("msg_id", ""))

    link.start(on_message, lambda reason: None)
    await link.wait_connected(10.0)
    delivered = stranded = 0
    for _ in range(ROUNDS):
        first = link.new_message("kernel_info_request", {})
        link.send(channel, first)
        identity, request = kernel.receive(channel)
        await asyncio.sleep(0)  # the reader is back to waiting on the socket
        # From here to the next await the loop is held: the reply lands in the client's
        # socket, and the next send happens before the reader could have looked.
        kernel.reply(channel, identity, request)
        deadline = time.perf_counter() + HOLD_SECONDS
        while time.perf_counter() < deadline:
            pass
        second = link.new_message("kernel_info_request", {})
        link.send(channel, second)
        identity, request = kernel.receive(channel)
        try:
            got = await asyncio.wait_for(replies.get(), wait)
        except asyncio.TimeoutError:
            stranded += 1
            # Unread, not lost on the wire: the reply sits in the socket. (The reader is
            # made to look again, so the rounds can go on.)
            assert link._sockets[channel].get(zmq.EVENTS) & zmq.POLLIN
            asyncio.get_running_loop().call_soon(link._ready, channel)
            got = await asyncio.wait_for(replies.get(), 10.0)
        assert got == first["header"]["msg_id"]
        delivered += 1
        kernel.reply(channel, identity, request)
        assert await asyncio.wait_for(replies.get(), 10.0) == second["header"]["msg_id"]
        if until_stranded and stranded:
            break
    return delivered, stranded


@pytest.mark.parametrize("channel", ["shell", "control"])
async def test_every_reply_is_read_whatever_send_overlaps_it(
    kernel_side: tuple[FakeKernel, dict[str, Any]],
    context: zmq.asyncio.Context,
    channel: Channel,
) -> None:
    kernel, info = kernel_side
    link = ZmqKernelChannels(info, context)
    try:
        delivered, stranded = await _rounds(link, kernel, channel, wait=10.0)
    finally:
        await link.close()
    assert (delivered, stranded) == (ROUNDS, 0)


async def test_the_harness_catches_the_raw_send_path(
    kernel_side: tuple[FakeKernel, dict[str, Any]], context: zmq.asyncio.Context
) -> None:
    """With ``Session.send`` on a shadow socket, replies are stranded in these rounds."""
    kernel, info = kernel_side
    link = RawSendChannels(info, context)
    try:
        delivered, stranded = await _rounds(link, kernel, "shell", wait=1.0, until_stranded=True)
    finally:
        await link.close()
    assert stranded == 1, f"no reply was stranded in {delivered} rounds"
