"""A kernel the gateway started but whose channels cannot be opened is deleted, not left.

A real gateway behind a real proxy that passes the REST API but refuses websocket
upgrades (a common misconfiguration of a reverse proxy in front of a gateway):
``create_session`` starts the kernel, fails to open its channels, and must delete the
kernel it started; the ``replicas`` fixture fails the test on any kernel no session holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.gateway.conftest import Replicas


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def refusing_proxy(replicas: Replicas) -> AsyncIterator[str]:
    """``http://127.0.0.1:<port>``: the gateway, with every websocket upgrade refused."""
    target = urlsplit(replicas.gateway.url)
    assert target.hostname is not None
    assert target.port is not None
    refused: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"upgrade: websocket" in head.lower():
            refused.append(head.split(b"\r\n", 1)[0])
            writer.close()  # the handshake fails at once
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.hostname, target.port
        )
        upstream_writer.write(head)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"
    assert refused, "no websocket upgrade reached the proxy"


async def test_a_kernel_whose_channels_cannot_open_is_deleted(
    replicas: Replicas, refusing_proxy: str
) -> None:
    client = await replicas.open(gateway_url=refusing_proxy)
    result = await client.call_tool(
        "create_session", {"session_id": "no-channels"}, raise_on_error=False
    )
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("GATEWAY_ERROR: could not open the kernel websocket"), text
    assert replicas.kernel_id("no-channels") not in replicas.gateway.kernel_ids()
