"""Serving streamable HTTP with uvicorn, without its tenth-of-a-second tick.

uvicorn's ``Server.main_loop`` wakes the process ten times a second to see whether a
signal asked it to stop, and refreshes the ``Date`` header on every tenth wake. On a
server that is idle most of the time those wake-ups were a large share of its CPU.
``QuietServer`` waits on an event instead: SIGINT and SIGTERM reach it through the event
loop's own signal handling (which wakes the loop whichever thread the signal lands on)
and set it; the ``Date`` header is made when a response asks for it, once a second at
most (``DatedState``). Shutdown is uvicorn's own: stop accepting, let requests finish
within ``timeout_graceful_shutdown`` (then cancel them), then the app's lifespan ends
and stops the kernels. uvicorn hands a signal it caught back to the handler that was
there before once it has shut down; ``QuietServer`` does not, so the command ends with
status 0 after a graceful shutdown. A configuration that needs uvicorn's periodic
checks (``limit_max_requests``, ``callback_notify``) keeps uvicorn's loop.

``serve_http`` does what ``FastMCP.run_http_async`` does, with this server: it builds the
app, enters the app's lifespan around the server (so a start-up failure reaches the
command as an exception) and runs uvicorn with its own lifespan handling off.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Generator
from email.utils import formatdate
from typing import Any

import uvicorn
from uvicorn.server import HANDLED_SIGNALS, ServerState

from python_mcp_server.server.http_security import http_options
from python_mcp_server.settings import Settings

#: What fastmcp's ``run_http_async`` gives uvicorn and we keep.
WEBSOCKETS = "websockets-sansio"
GRACEFUL_SHUTDOWN = 3


class DatedState(ServerState):
    """uvicorn's shared state, whose default headers carry the current ``Date``.

    uvicorn's protocols read ``default_headers`` for every response; this makes them
    when the second has changed since the last response.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        self._config = config
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = []
        super().__init__()

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        now = time.time()
        if int(now) != self._second:
            date = [(b"date", formatdate(now, usegmt=True).encode())]
            dated = date if self._config.date_header else []
            self._headers = dated + self._config.encoded_headers
            self._second = int(now)
        return self._headers

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        self._headers = value


class QuietServer(uvicorn.Server):
    """uvicorn's server, asleep between requests until a signal says stop."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_asked = False
        super().__init__(config)
        self.server_state = DatedState(config)

    @property
    def should_exit(self) -> bool:
        return self._exit_asked

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        # Set by the signal handlers, or by anyone (any thread) who wants it to stop.
        self._exit_asked = value
        loop = self._loop
        if value and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop.set)

    def _ticks(self) -> bool:
        config = self.config
        return config.limit_max_requests is not None or config.callback_notify is not None

    async def main_loop(self) -> None:
        if self._ticks():
            await super().main_loop()
            return
        self._loop = asyncio.get_running_loop()
        if not self.should_exit:
            await self._stop.wait()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        before = {sig: signal.getsignal(sig) for sig in HANDLED_SIGNALS}
        for sig in HANDLED_SIGNALS:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig, handler in before.items():
                loop.remove_signal_handler(sig)
                if handler is not None:
                    signal.signal(sig, handler)


async def serve_http(server: Any, settings: Settings) -> None:
    """Serve ``server`` (a FastMCP app) over streamable HTTP until SIGINT or SIGTERM."""
    app = server.http_app(transport="http", **http_options(settings))
    async with app.lifespan(app):
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            access_log=settings.log_level == "DEBUG",
            lifespan="off",  # entered above
            ws=WEBSOCKETS,
        )
        await QuietServer(config).serve()
