"""An execution completes on its reply and its idle status, in either order, as the routing
tells it (no task waits for them); a missing reply, a death and a close end it as before.

The kernel's side is a stand-in here: the faults (a kernel that goes idle without replying,
one that dies between its reply and its idle status) cannot be produced on cue by a real
kernel. Real kernels run the same code path in tests/server/test_execution.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from python_mcp_server.core.sessions import kernel_requests
from python_mcp_server.errors import KernelDiedError
from tests.core.stand_in_kernel import Link


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    made = Link()
    yield made
    await made.client.close(kill=True)


def execute(link: Link) -> kernel_requests.Execution:
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
    monkeypatch.setattr(kernel_requests, "REPLY_GRACE", 0.01)
    execution = execute(link)
    link.idle()
    reply = await execution.wait(10.0)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert reply["parent_header"]["msg_id"] == execution.msg_id
    assert len(link.channels.sent) == 1  # an execution is never sent again


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
