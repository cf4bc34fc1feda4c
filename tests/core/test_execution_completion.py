"""An execution completes on its reply and its idle status, in either order, as the routing
tells it (no task waits for them); a missing reply, a death and a close end it as before.

The kernel's side is a stand-in here: the faults (a kernel that goes idle without replying,
one that dies between its reply and its idle status) cannot be produced on cue by a real
kernel. Real kernels run the same code path in tests/server/test_execution.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from python_mcp_server.core.sessions import kernel_client
from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.errors import KernelDiedError
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

    def new_message(self, msg_type: str, content: Any) -> Message:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type}
        return {"header": header, "parent_header": {}, "metadata": {}, "content": dict(content)}

    def send(self, channel: Channel, message: Message) -> None:
        self.sent.append((channel, message))

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
    def __init__(self) -> None:
        self.kernel = StandInKernel()
        self.channels = StandInChannels()
        self.client = KernelClient(self.kernel, self.channels)

    def message(self, channel: Channel, msg_type: str, content: dict[str, Any]) -> None:
        assert self.channels.deliver is not None
        parent = self.channels.sent[-1][1]["header"]
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type}
        self.channels.deliver(
            channel,
            {"header": header, "parent_header": parent, "metadata": {}, "content": content},
        )

    def reply(self) -> None:
        self.message("shell", "execute_reply", {"status": "ok", "execution_count": 1})

    def idle(self) -> None:
        self.message("iopub", "status", {"execution_state": "idle"})


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    made = Link()
    yield made
    await made.client.close(kill=True)


def execute(link: Link) -> kernel_client.Execution:
    return link.client.start_execute("1+1", on_iopub=lambda message: None, on_stdin=None)


@pytest.mark.parametrize("reply_first", [True, False])
async def test_reply_and_idle_in_either_order(link: Link, reply_first: bool) -> None:
    execution = execute(link)
    first, second = (link.reply, link.idle) if reply_first else (link.idle, link.reply)
    first()
    assert not execution.done()
    second()
    assert execution.done()  # told by the routing itself, no loop turn needed
    reply = await execution.wait(1.0)
    assert reply["content"]["status"] == "ok"
    assert link.client.executed.is_set()
    assert not link.client._pending  # forgotten once done


async def test_idle_without_a_reply_ends_with_a_stand_in_after_the_grace(
    link: Link, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_client, "REPLY_GRACE", 0.01)
    execution = execute(link)
    link.idle()
    reply = await execution.wait(10.0)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert reply["parent_header"]["msg_id"] == execution.msg_id


async def test_a_reply_within_the_grace_is_the_answer(link: Link) -> None:
    execution = execute(link)
    link.idle()
    assert not execution.done()
    link.reply()
    assert (await execution.wait(1.0))["content"]["status"] == "ok"


async def test_a_timeout_leaves_it_running(link: Link) -> None:
    execution = execute(link)
    with pytest.raises(asyncio.TimeoutError):
        await execution.wait(0.01)
    assert not execution.done()
    link.reply()
    link.idle()
    assert (await execution.wait(1.0))["content"]["status"] == "ok"


@pytest.mark.parametrize("replied", [False, True])
async def test_death_before_the_end_raises_kernel_died(link: Link, replied: bool) -> None:
    execution = execute(link)
    if replied:
        link.reply()
    await link.kernel.kill()
    with pytest.raises(KernelDiedError, match="SIGKILL"):
        await execution.wait(10.0)
    assert link.client.executed.is_set()


async def test_closing_the_client_ends_it(link: Link) -> None:
    execution = execute(link)
    await link.client.close(kill=False)
    with pytest.raises(KernelDiedError, match="shut down"):
        await execution.wait(1.0)


async def test_cancel_ends_it_and_forgets_it(link: Link) -> None:
    execution = execute(link)
    execution.cancel()
    assert execution.done()
    with pytest.raises(asyncio.CancelledError):
        await execution.wait(1.0)
    link.reply()  # a late reply is not routed to it any more
    assert not link.client._pending
