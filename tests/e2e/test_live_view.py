"""The live view in a real headless Chromium: a session as a notebook, following it as it runs.

The server is the real command; cells run through MCP; the page is loaded through a signed
link and checked in the DOM (text, decoded images, the variables panel, the end of a
session), and a screenshot is taken. Nothing of the page comes from the internet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client

from tests.chromium import Browser
from tests.e2e.conftest import LaunchedServer, StartServer
from tests.helpers import call, run

PLOT = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [3, 1, 2])
plt.show()
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    page = Browser()
    await page.start()
    try:
        yield page
    finally:
        await page.close()


@pytest.fixture
def viewer(start_server: StartServer) -> LaunchedServer:
    return start_server("--toolsets", "default,notebooks")


async def link(client: Client[Any], session_id: str) -> str:
    return str((await call(client, "get_session_view_link", session_id=session_id))["url"])


async def test_the_page_follows_a_session_as_it_runs(
    viewer: LaunchedServer, browser: Browser, tmp_path: Path
) -> None:
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        await run(client, "answer = 42")
        await browser.goto(await link(client, "default"))
        await browser.wait_for("document.body.dataset.ready === '1'", "the snapshot")
        assert "answer = 42" in await browser.evaluate("document.body.innerText")

        await run(client, "print('hello from the live view')")
        await browser.wait_for(
            "document.body.innerText.includes('hello from the live view')", "a new cell"
        )
        await run(client, PLOT)
        width = await browser.wait_for(
            "[...document.images].map(i => i.complete && i.naturalWidth).find(Boolean)",
            "a decoded image",
        )
        assert width > 100
        await run(client, "1/0")
        await browser.wait_for(
            "[...document.querySelectorAll('.error')].some(e => "
            "e.textContent.includes('ZeroDivisionError'))",
            "the failed cell's error",
        )
        await browser.wait_for(
            "document.getElementById('variables').innerText.includes('answer')",
            "the variables panel",
        )
        shot = await browser.screenshot(tmp_path / "view.png")
        assert shot.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(shot) > 5000
        # The page was all there is: no request left loopback.
        origins = await browser.evaluate(
            "[...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).host))]"
        )
        assert all(host.startswith("127.0.0.1") for host in origins), origins


async def test_output_streams_while_a_cell_runs(viewer: LaunchedServer, browser: Browser) -> None:
    slow = (
        "import time\n"
        "print('first half', flush=True)\n"
        "while not __import__('os').path.exists('release'):\n"
        "    time.sleep(0.05)\n"
        "print('second half')"
    )
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        await run(client, "ready = True")
        await browser.goto(await link(client, "default"))
        await browser.wait_for("document.body.dataset.ready === '1'", "the snapshot")
        running = asyncio.create_task(run(client, slow))
        await browser.wait_for(
            "[...document.querySelectorAll('.running .live')].some(e => "
            "e.textContent.includes('first half'))",
            "the running cell's output so far",
        )
        (viewer.workspace / "release").touch()
        await running
        await browser.wait_for(
            "document.body.innerText.includes('second half') && "
            "!document.querySelector('.running')",
            "the finished cell",
        )


async def test_kernel_output_cannot_script_the_page(
    viewer: LaunchedServer, browser: Browser
) -> None:
    hostile = (
        "from IPython.display import HTML, display\n"
        'display(HTML(\'<script>document.title = "pwned"</script>'
        '<img src=x onerror="document.title=&quot;pwned&quot;">\'))\n'
        "print('<b onmouseover=alert(1)>bold?</b>')"
    )
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        await run(client, hostile)
        await browser.goto(await link(client, "default"))
        await browser.wait_for("document.body.dataset.ready === '1'", "the snapshot")
    assert await browser.evaluate("document.title") == "Session default"
    assert await browser.evaluate("document.querySelectorAll('b, script:not([nonce])').length") == 0
    assert "<b onmouseover=alert(1)>bold?</b>" in await browser.evaluate("document.body.innerText")


async def test_a_deleted_session_says_it_ended(viewer: LaunchedServer, browser: Browser) -> None:
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        await call(client, "create_session", session_id="brief")
        await run(client, "x = 1", session_id="brief")
        await browser.goto(await link(client, "brief"))
        await browser.wait_for("document.body.dataset.ready === '1'", "the snapshot")
        await call(client, "delete_session", session_id="brief")
        await browser.wait_for(
            "document.getElementById('ended').innerText.includes('ended')", "the end banner"
        )


async def test_the_session_list_links_every_session(
    viewer: LaunchedServer, browser: Browser
) -> None:
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        await call(client, "create_session", session_id="alpha")
        await call(client, "create_session", session_id="beta")
        await browser.goto(await link(client, "*"))
        names = await browser.wait_for(
            "[...document.querySelectorAll('#sessions a')].map(a => a.textContent)",
            "the session links",
        )
    assert {"alpha", "beta"} <= set(names)


async def test_links_are_the_only_way_in(viewer: LaunchedServer) -> None:
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        await call(client, "create_session", session_id="mine")
        url = await link(client, "mine")
        other = await link(client, "default")
    base = viewer.url
    async with httpx.AsyncClient(follow_redirects=False) as http:
        assert (await http.get(f"{base}/sessions/mine/view")).status_code == 401
        assert (await http.get(f"{base}/sessions/mine/events")).status_code == 401
        assert (await http.get(f"{base}/sessions")).status_code == 401
        token = url.split("?t=", 1)[1]
        forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        assert (await http.get(f"{base}/sessions/mine/view?t={forged}")).status_code == 401
        wrong = other.split("?t=", 1)[1]  # a link to another session opens only that one
        assert (await http.get(f"{base}/sessions/mine/view?t={wrong}")).status_code == 401
        assert (await http.get(f"{base}/sessions?t={token}")).status_code == 401
        opened = await http.get(url)
        assert opened.status_code == 303
        assert opened.headers["location"].endswith("/sessions/mine/view")
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        http.cookies = opened.cookies
        page = await http.get(f"{base}/sessions/mine/view")
        assert page.status_code == 200
        assert "script-src 'nonce-" in page.headers["content-security-policy"]
        assert "http://" not in page.text.replace(base, "")  # nothing loaded from elsewhere


async def test_the_app_is_listed_and_served(viewer: LaunchedServer) -> None:
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        tools = {tool.name: tool for tool in await client.list_tools()}
        ui = (tools["show_session_view"].meta or {}).get("ui", {})
        assert ui.get("resourceUri") == "ui://python-mcp-server/session-view.html"
        contents = await client.read_resource(ui["resourceUri"])
        assert contents[0].mime_type == "text/html;profile=mcp-app"
        assert "ui/initialize" in contents[0].text  # type: ignore[union-attr]
        await run(client, "shown = 'in the app'")
        cells = await call(client, "session_view_cells", session_id="default")
        assert cells["total"] == 1
        assert json.dumps(cells["cells"][0]).count("shown = 'in the app'") == 1


async def first_event(http: httpx.AsyncClient, url: str) -> tuple[str, dict[str, Any]]:
    """The first server-sent event of a stream (name, data)."""
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                return name, json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended before its first event")


async def test_principals_see_only_their_own_sessions(
    start_server: StartServer, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice alice-token-0123456789\nbob bob-token-0123456789ab\n")
    server = start_server(
        "--toolsets",
        "default,notebooks",
        env={"MCP_AUTH_TOKENS_FILE": str(tokens), "MCP_KERNEL_POOL_SIZE": "0"},
    )
    links = {}
    for name in ("alice", "bob"):
        token = f"{name}-token-0123456789" + ("ab" if name == "bob" else "")
        async with Client(server.mcp_url, auth=token) as client:
            await call(client, "create_session", session_id="work")
            await run(client, f"owner = '{name}'", session_id="work")
            links[name] = await link(client, "work")
            links[name + "-list"] = await link(client, "*")
    async with httpx.AsyncClient() as http:
        for name in ("alice", "bob"):
            events = links[name].replace("/view?", "/events?")
            kind, snapshot = await first_event(http, events)
            assert kind == "snapshot"
            assert [c["source"] for c in snapshot["cells"]] == [f"owner = '{name}'"]
        listing = await http.get(links["alice-list"], follow_redirects=True)
        assert "work" in listing.text
        assert listing.text.count("/view'") == 1  # alice's one session, not bob's


HOST = """
window.outbox = [];
window.addEventListener('message', e => window.outbox.push(e.data));
const frame = document.createElement('iframe');
frame.sandbox = 'allow-scripts allow-same-origin';
frame.srcdoc = %s;
document.body.appendChild(frame);
"""


async def test_the_app_renders_in_a_host_frame(viewer: LaunchedServer, browser: Browser) -> None:
    """A stand-in MCP Apps host: the app runs in an iframe, and its JSON-RPC messages are
    relayed to the real server by this test, as a chat client would."""
    async with Client(viewer.mcp_url, auth=viewer.token) as client:
        await run(client, "from_the_app = 7")
        await run(client, PLOT)
        contents = await client.read_resource("ui://python-mcp-server/session-view.html")
        app_html = contents[0].text  # type: ignore[union-attr]
        shown = await client.call_tool("show_session_view", {"session_id": "default"})
        await browser.goto("about:blank")
        await browser.evaluate(HOST % json.dumps(app_html))

        async def reply(message: dict[str, Any]) -> None:
            frame = "document.querySelector('iframe').contentWindow"
            await browser.evaluate(f"{frame}.postMessage({json.dumps(message)}, '*')")

        inner = "document.querySelector('iframe').contentDocument.body"
        for _ in range(400):
            for message in await browser.evaluate("window.outbox.splice(0)") or []:
                if message.get("method") == "ui/initialize":
                    await reply({"jsonrpc": "2.0", "id": message["id"], "result": {}})
                    await reply(
                        {
                            "jsonrpc": "2.0",
                            "method": "ui/notifications/tool-result",
                            "params": {"structuredContent": shown.structured_content},
                        }
                    )
                elif message.get("method") == "tools/call":
                    params = message["params"]
                    result = await client.call_tool(params["name"], params["arguments"])
                    await reply(
                        {
                            "jsonrpc": "2.0",
                            "id": message["id"],
                            "result": {"structuredContent": result.structured_content},
                        }
                    )
            text = await browser.evaluate(f"{inner} ? {inner}.innerText : ''")
            images = await browser.evaluate(
                f"{inner} ? [...{inner}.querySelectorAll('img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).length : 0"
            )
            if "from_the_app = 7" in text and images:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the app never showed the session; it shows:\n{text}")


async def test_the_log_gives_a_link_to_the_session_list(viewer: LaunchedServer) -> None:
    link_line = next(line for line in viewer.log().splitlines() if "/sessions?t=" in line)
    url = link_line[link_line.index("http://") :].split()[0]
    async with httpx.AsyncClient(follow_redirects=True) as http:
        listing = await http.get(url)
    assert listing.status_code == 200
    assert "<table id=sessions>" in listing.text
