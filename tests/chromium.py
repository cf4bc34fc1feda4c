"""A real headless Chromium for tests, driven over the DevTools protocol (CDP).

``Browser`` starts Debian's ``chromium`` on a private profile with no network use of its own
(no background services, loopback pages only), opens one page and speaks CDP to it over a
websocket: navigate, evaluate JavaScript, wait for a condition, take a screenshot. CI
installs chromium (``.ci/run``); where it is missing and ``PMCP_REQUIRE_BROWSER`` (or CI) is
set, that is a failure, elsewhere a skip.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--remote-debugging-port=0",
)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") or os.environ.get("PMCP_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return path


class Browser:
    """One headless Chromium with one page."""

    def __init__(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="pmcp-chromium-")
        self._process: asyncio.subprocess.Process | None = None
        self._ws: Any = None
        self._next = 0
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            chromium_path(),
            *FLAGS,
            f"--user-data-dir={self._profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        for _ in range(600):  # Chromium writes the file once it listens
            if port_file.exists() and port_file.read_text().strip():
                break
            if self._process.returncode is not None:
                raise RuntimeError("chromium exited at start")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with httpx.AsyncClient() as http:
            pages = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(p for p in pages if p.get("type") == "page")
        self._ws = await websockets.connect(page["webSocketDebuggerUrl"], max_size=64 << 20)
        self._reader = asyncio.create_task(self._read())
        await self.send("Page.enable")
        await self.send("Runtime.enable")

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            future = self._replies.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next] = future
        await self._ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, what: str, *, tries: int = 600) -> Any:
        """Poll a JavaScript expression until it is truthy (bounded); return its value."""
        for _ in range(tries):
            try:
                value = await self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            await asyncio.sleep(0.05)
        body = await self.evaluate("document.body ? document.body.innerText : ''")
        raise AssertionError(f"the page never showed {what}; it shows:\n{body}")

    async def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode((await self.send("Page.captureScreenshot", format="png"))["data"])
        await asyncio.to_thread(path.write_bytes, data)
        return data

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except asyncio.TimeoutError:
                self._process.kill()
                await self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)
