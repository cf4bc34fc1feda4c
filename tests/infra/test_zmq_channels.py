"""The ZeroMQ link's message framing and decoding: what it sends is framed and signed as
jupyter_client's Session frames it; signed messages pass, tampered ones do not."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq.asyncio
from jupyter_client.session import Session

from python_mcp_server.infra.kernels.zmq_channels import ZmqKernelChannels

KEY = b"0123456789abcdef"


@pytest.fixture
async def channels(tmp_path: Path) -> AsyncIterator[ZmqKernelChannels]:
    context = zmq.asyncio.Context()
    info = {
        "transport": "ipc",
        "ip": str(tmp_path / "k"),
        "key": KEY,
        "signature_scheme": "hmac-sha256",
        **{
            f"{name}_port": index
            for index, name in enumerate(("shell", "iopub", "stdin", "control"), 1)
        },
    }
    link = ZmqKernelChannels(info, context)
    yield link
    await link.close()
    context.destroy(linger=0)


def frames_for(session: Session, content: dict[str, object]) -> list[bytes]:
    message = session.msg("execute_reply", content)
    return [b"identity", *session.serialize(message)]


async def test_a_signed_message_decodes(channels: ZmqKernelChannels) -> None:
    kernel = Session(key=KEY)
    decoded = channels._decode(frames_for(kernel, {"status": "ok"}))
    assert decoded["content"] == {"status": "ok"}
    assert decoded["msg_type"] == "execute_reply"


async def test_wrong_key_and_tampering_are_refused(channels: ZmqKernelChannels) -> None:
    with pytest.raises(ValueError, match="signature"):
        channels._decode(frames_for(Session(key=b"another key"), {"status": "ok"}))
    frames = frames_for(Session(key=KEY), {"status": "ok"})
    frames[-1] = b'{"status": "error"}'
    with pytest.raises(ValueError, match="signature"):
        channels._decode(frames)
    with pytest.raises(ValueError, match="delimiter"):
        channels._decode([b"no delimiter here"])


async def test_signed_but_malformed_messages_are_refused(channels: ZmqKernelChannels) -> None:
    """Kernel code holds the key, so it can sign garbage: the shape is checked too."""
    kernel = Session(key=KEY)
    for header, content in (
        ({"msg_id": "a", "msg_type": 7}, {}),
        ({"msg_id": "b"}, {}),
        ({"msg_id": "c", "msg_type": "stream"}, "[1, 2]"),
    ):
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        with pytest.raises(ValueError, match=r"object|msg_type"):
            channels._decode([b"identity", *kernel.serialize(message)])


@pytest.mark.filterwarnings("ignore:Message serialization failed")  # the NaN: Session's own
async def test_sent_frames_are_session_serialize_byte_for_byte(
    channels: ZmqKernelChannels,
) -> None:
    """The link frames and signs messages itself (one JSON encoder, its own HMAC copy);
    the kernel must receive exactly what ``Session.serialize`` gives, for every shape."""
    session = Session(key=KEY, signature_scheme="hmac-sha256")
    request = channels.new_message("execute_request", {"code": "1+1", "silent": False})
    reply = channels.new_message("input_reply", {"value": "héllo \u2603 \udcff"})
    reply["parent_header"] = {
        "msg_id": "x",
        "msg_type": "input_request",
        "date": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
    }
    reply["metadata"] = {"deleted": [b"bytes", 1.5, None]}
    odd = [
        {**request, "content": None},  # Session packs None as {}
        {**request, "content": b'{"packed": true}'},  # already packed: relayed as is
        {**request, "content": {"x": math.nan}},  # not JSON as it is: Session cleans it
        {**request, "content": {"when": datetime.date(2026, 1, 2), "ids": {1, 2}}},
    ]
    for message in (request, reply, *odd):
        assert channels.serialize(message) == session.serialize(message), message
    assert channels._decode([b"identity", *channels.serialize(request)])["content"] == {
        "code": "1+1",
        "silent": False,
    }


async def test_an_unsigned_link_sends_and_reads_unsigned_frames(tmp_path: Path) -> None:
    context = zmq.asyncio.Context()
    names = ("shell", "iopub", "stdin", "control")
    info = {"transport": "ipc", "ip": str(tmp_path / "k"), "key": b""}
    info.update({f"{name}_port": i for i, name in enumerate(names)})
    link = ZmqKernelChannels(info, context)
    try:
        message = link.new_message("kernel_info_request", {})
        assert link.serialize(message) == Session(key=b"").serialize(message)
        assert link.serialize(message)[1] == b""
        assert link._decode(link.serialize(message))["msg_type"] == "kernel_info_request"
    finally:
        await link.close()
        context.destroy(linger=0)


def test_gateway_frames_of_the_wrong_shape_are_refused() -> None:
    from python_mcp_server.infra.kernels.websocket_channels import _decode

    good = {"channel": "iopub", "header": {"msg_type": "stream"}, "content": {"text": "x"}}
    assert _decode(json.dumps(good))["header"]["msg_type"] == "stream"
    for bad in (
        [1, 2],
        {**good, "header": {"msg_type": 3}},
        {**good, "header": "not an object"},
        {**good, "content": [1]},
        {**good, "parent_header": 5},
    ):
        with pytest.raises(ValueError, match=r"object|msg_type"):
            _decode(json.dumps(bad))
