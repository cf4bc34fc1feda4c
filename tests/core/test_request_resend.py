"""A read-only request whose reply the kernel dropped is sent once more, with a fresh msg_id.

The kernel goes idle after a request without replying when an interrupt lands in the
request's handler. ``KernelClient.request`` then waits ``REPLY_GRACE`` for the reply, sends
a read-only request once more and fails with KERNEL_REPLY_LOST if that reply is lost too.
The kernel's side is a stand-in here, for what a real kernel cannot do on cue: a reply
arriving late, after the request was sent again. Real kernels drop replies in
tests/server/test_lost_replies.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from python_mcp_server.core.sessions import kernel_requests
from python_mcp_server.errors import KernelReplyLostError
from python_mcp_server.infra.kernels.base import Message
from tests.core.stand_in_kernel import Link


@pytest.fixture
async def link(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Link]:
    monkeypatch.setattr(kernel_requests, "REPLY_GRACE", 0.01)
    made = Link()
    yield made
    await made.client.close(kill=True)


def complete(link: Link, msg_type: str = "complete_request") -> asyncio.Future[Message]:
    return asyncio.ensure_future(
        link.client.request(msg_type, {"code": "json.du", "cursor_pos": 7}, timeout=30)
    )


def answer(link: Link, to: Message, matches: list[str]) -> None:
    link.message("shell", "complete_reply", {"status": "ok", "matches": matches}, to)


async def test_a_dropped_reply_is_asked_again_and_a_late_one_is_not_taken(link: Link) -> None:
    asked = complete(link)
    first = await link.channels.sent_count(1)
    link.idle(first)
    again = await link.channels.sent_count(2)  # after the grace
    assert again["header"]["msg_type"] == "complete_request"
    assert again["header"]["msg_id"] != first["header"]["msg_id"]
    assert again["content"] == first["content"]
    answer(link, first, ["late"])  # the first reply after all: no one waits for it now
    answer(link, again, ["dumps"])
    reply = await asyncio.wait_for(asyncio.shield(asked), 10)
    assert reply["content"]["matches"] == ["dumps"]
    assert reply["parent_header"]["msg_id"] == again["header"]["msg_id"]
    assert not link.client._pending


async def test_a_reply_just_after_the_idle_status_is_the_answer(
    link: Link, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_requests, "REPLY_GRACE", 30.0)
    asked = complete(link)
    first = await link.channels.sent_count(1)
    link.idle(first)
    pending = link.client._pending[first["header"]["msg_id"]]
    answer(link, first, ["dumps"])
    assert (await asyncio.wait_for(asyncio.shield(asked), 10))["content"]["matches"] == ["dumps"]
    assert len(link.channels.sent) == 1
    assert pending.grace is not None
    assert pending.grace.cancelled()
    assert not link.client._pending


async def test_a_reply_lost_twice_fails_with_kernel_reply_lost(link: Link) -> None:
    asked = complete(link)
    link.idle(await link.channels.sent_count(1))
    link.idle(await link.channels.sent_count(2))
    with pytest.raises(KernelReplyLostError, match="complete_request twice") as caught:
        await asyncio.wait_for(asyncio.shield(asked), 10)
    assert caught.value.code.value == "KERNEL_REPLY_LOST"
    assert len(link.channels.sent) == 2
    assert not link.client._pending


async def test_a_request_that_changes_state_is_not_sent_again(link: Link) -> None:
    asked = complete(link, "shutdown_request")
    link.idle(await link.channels.sent_count(1))
    with pytest.raises(KernelReplyLostError) as caught:
        await asyncio.wait_for(asyncio.shield(asked), 10)
    assert "twice" not in caught.value.message
    assert len(link.channels.sent) == 1
    assert not link.client._pending


async def test_a_caller_that_gives_up_leaves_nothing_waiting(
    link: Link, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_requests, "REPLY_GRACE", 30.0)
    asked = complete(link)
    first = await link.channels.sent_count(1)
    link.idle(first)
    pending = link.client._pending[first["header"]["msg_id"]]
    asked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asked
    assert not link.client._pending
    assert pending.grace is not None
    assert pending.grace.cancelled()
    answer(link, first, ["late"])  # dropped: nothing is waiting for it
    assert len(link.channels.sent) == 1
