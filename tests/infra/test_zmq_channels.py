"""The ZeroMQ link's message decoding: signed messages pass, tampered ones do not."""

from __future__ import annotations

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
