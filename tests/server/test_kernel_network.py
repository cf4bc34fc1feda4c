"""Kernel network policies on real sandboxed kernels: allowlist through the proxy, deny, narrowing.

Loopback only: the "allowed domain" is a made-up name pinned (``kernel_network_hosts``) to
an HTTP server this test starts on the host's loopback; nothing on the internet is asked.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from tests.helpers import call, run, tool_error
from tests.sandbox_support import BOTH_KERNEL_ORIGINS, proxy_probe, require_bwrap
from tests.wheels import build_probe_sdist, build_wheel

pytestmark = BOTH_KERNEL_ORIGINS

FAKE_INDEX = "index.pmcp-test.example"


class _Hello(http.server.BaseHTTPRequestHandler):
    """``/simple/<project>/`` and its file (a PEP 503 index); anything else: hello."""

    wheel: Path
    #: More distributions served (project name -> file), added by tests.
    extra: dict[str, Path]

    def do_GET(self) -> None:
        self.answer(send_body=True)

    def do_HEAD(self) -> None:
        self.answer(send_body=False)

    def answer(self, *, send_body: bool) -> None:
        projects = {"pmcp-net-tiny": self.wheel, **self.extra}
        files = {f"/files/{path.name}": path for path in projects.values()}
        project = projects.get(self.path.rstrip("/").removeprefix("/simple/"))
        if self.path.startswith("/simple/") and project is not None:
            body = f'<a href="/files/{project.name}">{project.name}</a>'.encode()
        elif self.path in files:
            body = files[self.path].read_bytes()
        else:
            body = f"hello from upstream {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served() -> dict[str, Path]:
    """Distributions the index serves besides ``pmcp-net-tiny``; tests add theirs."""
    return {}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, served: dict[str, Path]) -> Iterator[int]:
    """An HTTP server (and package index) on the host's loopback; its port."""
    handler = type(
        "Index",
        (_Hello,),
        {
            "wheel": build_wheel(tmp_path_factory.mktemp("w"), "pmcp-net-tiny", "1.0"),
            "extra": served,
        },
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def settings_overrides(upstream: int) -> dict[str, Any]:
    require_bwrap()
    return {
        "sandbox": "bwrap",
        "kernel_pool_size": 0,
        "pip_index_url": f"http://{FAKE_INDEX}:{upstream}/simple",
        "kernel_network_hosts": f"{FAKE_INDEX}=127.0.0.1",
        "kernel_network_domains": "localhost",  # resolves (via /etc/hosts) to loopback
    }


FETCH = """
import urllib.request, urllib.error
def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
"""


async def test_default_allowlist_reaches_the_index_and_nothing_else(
    client: Client[Any], upstream: int, services: Services
) -> None:
    assert services.limits.network.startswith("allowlist (")
    result = await run(
        client,
        FETCH
        + f"print(fetch('http://{FAKE_INDEX}:{upstream}/simple/x/'))\n"
        + "print(fetch('http://169.254.169.254/latest/meta-data/'))\n"
        + f"print(fetch('http://{FAKE_INDEX}:{upstream + 1 if upstream < 65535 else 1}/'))\n"
        + "print(fetch('http://example.org/'))\n"
        + "import socket\n"
        + f"for address in (('127.0.0.1', {upstream}), ('169.254.169.254', 80)):\n"
        + "    try:\n"
        + "        socket.create_connection(address, 5)\n"
        + "    except OSError as e:\n"
        + "        print(type(e).__name__, e.errno)\n",
    )
    lines = result["stdout"].splitlines()
    assert lines[0] == "(200, 'hello from upstream /simple/x/')", result
    assert lines[1].startswith("(403, ")
    assert "is an address" in lines[1]
    assert lines[2].startswith("(403, ")
    assert "is not allowed" in lines[2]
    assert lines[3].startswith("(403, ")
    assert "not on the kernel network allowlist" in lines[3]
    # No route out of the namespace: refused at once, never a timeout.
    assert lines[4] == "ConnectionRefusedError 111"
    assert lines[5] == "OSError 101"


async def test_connect_tunnels_only_to_allowed_names(client: Client[Any], upstream: int) -> None:
    result = await run(
        client,
        "import os\n" + proxy_probe("/tunnel") + f"print(connect('{FAKE_INDEX}:{upstream}'))\n"
        "print(connect('169.254.169.254:80'))\n"
        "print(connect('[::ffff:169.254.169.254]:80'))\n"
        f"print(connect('localhost:{upstream}'))\n"
        "print(os.environ['HTTPS_PROXY'])",
    )
    lines = result["stdout"].splitlines()
    assert lines[0] == "HTTP/1.1 200 Connection established | hello from upstream /tunnel"
    # An address, its IPv4-mapped form, and an allowlisted name resolving to loopback.
    assert lines[1:4] == ["HTTP/1.1 403 Forbidden"] * 3, result
    assert lines[4] == "http://127.0.0.1:3128"


async def test_a_session_may_narrow_but_never_widen(client: Client[Any], upstream: int) -> None:
    refused = await tool_error(client, "create_session", {"session_id": "wide", "network": "allow"})
    assert refused.startswith("NETWORK_POLICY_REFUSED:")
    other = await tool_error(
        client, "create_session", {"session_id": "w2", "network_domains": ["example.org"]}
    )
    assert other.startswith("NETWORK_POLICY_REFUSED:")
    created = await client.call_tool("create_session", {"session_id": "off", "network": "deny"})
    assert created.structured_content["session"]["network"] == "deny"  # type: ignore[index]
    result = await run(
        client,
        "import os, socket\n"
        "print(sorted(k for k in os.environ if 'proxy' in k.lower()))\n"
        "for address in (('127.0.0.1', 3128), ('169.254.169.254', 80)):\n"
        "    try:\n"
        "        socket.create_connection(address, 5)\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__)\n",
        session_id="off",
    )
    assert result["stdout"] == "[]\nConnectionRefusedError\nOSError\n", result


async def test_pip_install_in_the_kernel_goes_through_the_proxy(client: Client[Any]) -> None:
    """``%pip install`` works under the default policy: the index is reached by name,
    through the forwarder and the proxy (the name exists nowhere but in the pin)."""
    result = await run(
        client, "%pip install pmcp-net-tiny\nimport pmcp_net_tiny\npmcp_net_tiny.VERSION"
    )
    assert result["result"] == "'1.0'", result["stdout"]


async def test_scripts_reach_the_allowlist_through_their_own_proxy(
    client: Client[Any], upstream: int, services: Services
) -> None:
    """``run_script`` under the default ``allowlist``: the script gets what a kernel gets
    (the forwarder on 127.0.0.1:3128 and the proxy variables), reaches the allowed name and
    nothing else; its proxy socket is closed when it ends, and a ``deny`` session's script
    gets no proxy at all."""
    script = (
        FETCH
        + "import os, socket\n"
        + f"print(fetch('http://{FAKE_INDEX}:{upstream}/simple/script/'))\n"
        + "print(fetch('http://169.254.169.254/latest/meta-data/'))\n"
        + "print(os.environ.get('HTTP_PROXY'))\n"
        + "try:\n"
        + f"    socket.create_connection(('127.0.0.1', {upstream}), 5)\n"
        + "except OSError as e:\n"
        + "    print(type(e).__name__)\n"
    )
    await client.call_tool("save_script", {"name": "fetch", "content": script})
    proxy = services.launcher.proxy  # type: ignore[attr-defined]
    before = set(proxy._listeners)
    result = await call(client, "run_script", path="scripts/fetch.py")
    lines = result["stdout"].splitlines()
    assert lines[0] == "(200, 'hello from upstream /simple/script/')", result
    assert lines[1].startswith("(403, "), result
    assert "is an address" in lines[1], result
    assert lines[2] == "http://127.0.0.1:3128"
    assert lines[3] == "ConnectionRefusedError", result  # only the proxy leads out
    assert set(proxy._listeners) == before  # the script's socket went with it

    closed = "import os, socket\nprint(os.environ.get('HTTP_PROXY'))\ntry:\n"
    closed += "    socket.create_connection(('127.0.0.1', 3128), 5)\nexcept OSError as e:\n"
    closed += "    print(type(e).__name__)\n"
    await client.call_tool("save_script", {"name": "closed", "content": closed})
    await client.call_tool("create_session", {"session_id": "closed", "network": "deny"})
    denied = await call(client, "run_script", path="scripts/closed.py", session_id="closed")
    assert denied["stdout"] == "None\nConnectionRefusedError\n", denied
    assert set(proxy._listeners) == before


@pytest.mark.parametrize(
    "settings_overrides", [{"sandbox": "bwrap", "kernel_pool_size": 0, "kernel_network": "allow"}]
)
async def test_a_narrowed_session_runs_scripts_under_its_own_policy(
    client: Client[Any], upstream: int
) -> None:
    """A session that asked for ``deny`` on an ``allow`` server: its kernel and its scripts
    (``run_script``, a separate process) reach nothing; the server's default session does."""
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {upstream}), 5).close()\n"
        "    print('reached')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    await client.call_tool("save_script", {"name": "probe", "content": probe})
    await client.call_tool("create_session", {"session_id": "quiet", "network": "deny"})
    quiet = await client.call_tool(
        "run_script", {"path": "scripts/probe.py", "session_id": "quiet"}
    )
    assert quiet.structured_content["stdout"] == "ConnectionRefusedError\n"  # type: ignore[index]
    assert (await run(client, probe, session_id="quiet"))["stdout"] == "ConnectionRefusedError\n"
    default = await client.call_tool("run_script", {"path": "scripts/probe.py"})
    assert default.structured_content["stdout"] == "reached\n"  # type: ignore[index]


async def test_server_side_installs_go_through_the_proxy(
    client: Client[Any], services: Services
) -> None:
    """``install_dependencies`` runs the installer in a network namespace of its own: the
    index is reached by its (pinned, made-up) name only through the forwarder and the
    proxy, and the run's proxy socket is closed when it ends."""
    await run(client, "1")  # the session's kernel (and its own proxy socket) first
    proxy = services.launcher.proxy  # type: ignore[attr-defined]
    before = set(proxy._listeners)
    result = await call(client, "install_dependencies", packages="pmcp-net-tiny")
    assert set(proxy._listeners) == before
    (outcome,) = result["packages"]
    assert outcome["status"] == "installed", result
    assert (await run(client, "import pmcp_net_tiny\npmcp_net_tiny.VERSION"))["result"] == "'1.0'"


async def test_an_sdist_build_reaches_only_the_index(
    client: Client[Any], upstream: int, served: dict[str, Path], tmp_path: Path
) -> None:
    """Code from the index (an sdist's build backend) runs during a server-side install:
    it reaches the allowlisted index through the proxy, but neither a service on the host's
    loopback (straight, or through the proxy) nor link-local (cloud metadata)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        served["pmcp-net-probe"] = build_probe_sdist(
            tmp_path, f"http://{FAKE_INDEX}:{upstream}/simple/x/", port
        )
        result = await call(client, "install_dependencies", packages="pmcp-net-probe")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's loopback service
    (outcome,) = result["packages"]
    assert outcome["status"] == "installed", result
    seen = await run(client, "import pmcp_net_probe\nprint(pmcp_net_probe.OUTCOME)")
    found = json.loads(seen["stdout"])
    assert found["index"] == [200, "hello from upstream /simple/x/"], found
    assert found["proxied"][0] == 403, found
    assert found["direct"] == "ConnectionRefusedError", found
    assert found["link"] == "OSError", found
