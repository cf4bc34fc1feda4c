"""The HTTP server without uvicorn's tick: a current Date header on every response, and a
stop asked from another thread ends it (signals: tests/e2e/test_lifecycle.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx
import uvicorn

from python_mcp_server.server.http_serve import QuietServer


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


class Announced(QuietServer):
    """Says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


async def test_dated_responses_and_a_stop_from_another_thread() -> None:
    config = uvicorn.Config(hello, host="127.0.0.1", port=0, lifespan="off", log_level="error")
    server = Announced(config)
    serving = asyncio.create_task(server.serve())
    with anyio.fail_after(30):
        await server.listening.wait()
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient() as http:
        for _ in range(2):
            before = int(time.time())
            response = await http.get(f"http://127.0.0.1:{port}/")
            after = time.time()
            assert response.text == "hello"
            date = parsedate_to_datetime(response.headers["date"]).timestamp()
            assert before <= date <= after
    await asyncio.to_thread(setattr, server, "should_exit", True)
    with anyio.fail_after(30):
        await serving
