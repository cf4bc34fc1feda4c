"""The egress of kernels forked from a sandboxed template (MCP_SANDBOX_FORK) under the
default ``allowlist``: no forwarder process; the kernel's init hands the server a socket
listening on the proxy's port of the kernel's own loopback, and the proxy serves it with
that kernel's policy alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.sandbox_fork import SandboxForkLauncher
from python_mcp_server.server.services import Services
from tests.helpers import call, run
from tests.sandbox_support import loopback_http, proxy_probe, require_bwrap

ALLOWED = "up.pmcp-test.example"


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """An HTTP server on the host's loopback, reachable by its pinned name; its port."""
    with loopback_http("hello") as port:
        yield port


@pytest.fixture
def settings_overrides(upstream: int) -> dict[str, Any]:
    require_bwrap()
    return {
        "sandbox": "bwrap",
        "sandbox_fork": True,
        "kernel_preload": "numpy",
        "kernel_pool_size": 0,
        # the index's port is allowed; its host pinned to the server above
        "pip_index_url": f"http://{ALLOWED}:{upstream}/simple",
        "kernel_network_hosts": f"{ALLOWED}={'127.0.0.1'}",
    }


async def test_the_proxy_serves_the_kernels_own_port(
    client: Client[Any], services: Services, upstream: int
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    await call(client, "create_session", session_id="a")
    cell = proxy_probe("/x") + (
        f"print(connect('{ALLOWED}:{upstream}'))\n"
        f"print(connect('example.org:{upstream}'))\n"
        "import os\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
    )
    result = await run(client, cell, session_id="a")
    assert result["status"] == "ok", result
    allowed, refused, pids = result["stdout"].splitlines()
    assert launcher.forked >= 1, launcher.template_problem
    assert allowed == "HTTP/1.1 200 Connection established | hello /x"
    assert refused.startswith("HTTP/1.1 403 ")
    assert pids == "[1, 2]"  # its init and itself: no forwarder
    waiter = psutil.Process(services.sessions.get("a").kernel_pid)
    assert len(waiter.children(recursive=True)) == 2
    # The port is the kernel's own: a second kernel's is another socket, same policy.
    await call(client, "create_session", session_id="b")
    again = await run(
        client, proxy_probe("/y") + f"print(connect('{ALLOWED}:{upstream}'))\n", session_id="b"
    )
    assert again["stdout"] == "HTTP/1.1 200 Connection established | hello /y\n"
    # The kernel ends: its port is closed with it, and the proxy keeps serving the other.
    await call(client, "delete_session", session_id="a")
    last = await run(
        client, proxy_probe("/z") + f"print(connect('{ALLOWED}:{upstream}'))\n", session_id="b"
    )
    assert last["stdout"] == "HTTP/1.1 200 Connection established | hello /z\n"
