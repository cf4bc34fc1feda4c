"""A stand-in for a kernel's side of KernelClient: it keeps what the client sends and
delivers the messages a test makes up, for faults a real kernel cannot produce on cue (a
reply sent late to a request no longer waited for, a death between reply and idle)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.infra.kernels.base import (
    Channel,
    ClosedHandler,
    KernelChannels,
    KernelExit,
    LaunchedKernel,
    Message,
    MessageHandler,
)


class StandInChannels(KernelChannels):
    """Keeps what is sent; the test delivers the kernel's messages."""

    def __init__(self) -> None:
        self.sent: list[tuple[Channel, Message]] = []
        self.deliver: MessageHandler | None = None
        self._more_sent = asyncio.Event()

    def new_message(self, msg_type: str, content: Any) -> Message:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type}
        return {"header": header, "parent_header": {}, "metadata": {}, "content": dict(content)}

    def send(self, channel: Channel, message: Message) -> None:
        self.sent.append((channel, message))
        self._more_sent.set()

    async def sent_count(self, count: int) -> Message:
        """Wait until ``count`` messages were sent; the last of them."""
        while len(self.sent) < count:
            self._more_sent.clear()
            await self._more_sent.wait()
        return self.sent[count - 1][1]

    def start(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        self.deliver = on_message

    async def close(self) -> None:
        return None


class StandInKernel(LaunchedKernel):
    def __init__(self) -> None:
        self.exited: asyncio.Future[KernelExit] = asyncio.get_running_loop().create_future()

    @property
    def pid(self) -> int | None:
        return None

    async def connect(self) -> KernelChannels:
        raise NotImplementedError

    def is_alive(self) -> bool:
        return not self.exited.done()

    async def wait_exit(self) -> KernelExit:
        return await asyncio.shield(self.exited)

    async def send_interrupt_signal(self) -> None:
        return None

    async def kill(self) -> None:
        if not self.exited.done():
            self.exited.set_result(KernelExit(-9, "killed by SIGKILL"))


class Link:
    """A KernelClient on the stand-in kernel; messages answer the last request sent
    unless ``to`` names another."""

    def __init__(self) -> None:
        self.kernel = StandInKernel()
        self.channels = StandInChannels()
        self.client = KernelClient(self.kernel, self.channels)

    def message(
        self,
        channel: Channel,
        msg_type: str,
        content: dict[str, Any],
        to: Message | None = None,
    ) -> None:
        assert self.channels.deliver is not None
        parent = (to if to is not None else self.channels.sent[-1][1])["header"]
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type}
        self.channels.deliver(
            channel,
            {"header": header, "parent_header": parent, "metadata": {}, "content": content},
        )

    def reply(self) -> None:
        self.message("shell", "execute_reply", {"status": "ok", "execution_count": 1})

    def idle(self, to: Message | None = None) -> None:
        self.message("iopub", "status", {"execution_state": "idle"}, to)
