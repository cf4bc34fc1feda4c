"""Whether the bubblewrap sandbox works on this machine, for the tests that need it.

CI (``.ci/run``) installs bubblewrap and sets ``PMCP_REQUIRE_SANDBOX=1``: there a missing
or broken sandbox fails the sandbox tests instead of skipping them.

Sandboxed kernels with a preload are forked by default (``MCP_SANDBOX_FORK``, root
servers). ``PMCP_SANDBOX_FORK=1`` runs the suite's sandboxed servers with forked kernels
throughout: a server that would start plain kernels preloads ``FORK_PRELOAD`` instead, so
each of its kernels comes from a sandboxed template.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator

import pytest

from python_mcp_server.infra.kernels.sandbox import find_bwrap, probe_bwrap


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    bwrap = find_bwrap()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    return probe_bwrap(bwrap, "deny")


def require_bwrap() -> None:
    """Fail (in CI) or skip (elsewhere) when bubblewrap cannot sandbox kernels here."""
    problem = bwrap_problem()
    if problem is None:
        return
    if os.environ.get("PMCP_REQUIRE_SANDBOX"):
        pytest.fail(f"the kernel sandbox is required here: {problem}")
    pytest.skip(f"the kernel sandbox cannot run here: {problem}")


#: A preload light enough for the suite's small memory limits: a fork is what counts.
FORK_PRELOAD = "json"


def forking() -> bool:
    return os.environ.get("PMCP_SANDBOX_FORK") == "1"


#: For the sandbox and escape suites: every test once against kernels started by
#: bubblewrap and once against kernels forked from a sandboxed template (the default for
#: kernels with a preload), in the one test run.
BOTH_KERNEL_ORIGINS = pytest.mark.parametrize(
    "sandbox_forking", [False, True], ids=["bwrap-started", "forked"]
)


def fork_variables(env: dict[str, str], fork: bool | None = None) -> dict[str, str]:
    """A sandboxed command's variables, with forked kernels when ``fork`` (by default:
    under ``PMCP_SANDBOX_FORK=1``)."""
    if not (forking() if fork is None else fork) or env.get("MCP_SANDBOX", "bwrap") == "none":
        return env
    preload = env.get("MCP_KERNEL_PRELOAD", "none")
    return {**env, "MCP_KERNEL_PRELOAD": FORK_PRELOAD if preload == "none" else preload}


def fork_settings(values: dict[str, object], fork: bool | None = None) -> dict[str, object]:
    """Settings of an in-process server, with forked kernels when ``fork`` (by default:
    under ``PMCP_SANDBOX_FORK=1``)."""
    if not (forking() if fork is None else fork) or values.get("sandbox", "bwrap") == "none":
        return values
    preload = values.get("kernel_preload", "none")
    return {**values, "kernel_preload": FORK_PRELOAD if preload == "none" else preload}


def proxy_probe(path: str) -> str:
    """Cell code defining ``connect(target)``: CONNECT through the kernel's egress proxy.

    It returns the proxy's status line and, when the tunnel opens, `` | `` and the body
    the upstream answers to ``GET path`` (read to the end: it may arrive in parts).
    """
    return (
        "import socket\n"
        "def connect(target):\n"
        "    s = socket.create_connection(('127.0.0.1', 3128), 10)\n"
        "    s.sendall(f'CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n'.encode())\n"
        "    answer = s.recv(4096).split(b'\\r\\n')[0].decode()\n"
        "    if answer.endswith(' 200 Connection established'):\n"
        f"        get = 'GET {path} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'\n"
        "        s.sendall(get.encode())\n"
        "        reply = b''\n"
        "        while chunk := s.recv(4096):\n"
        "            reply += chunk\n"
        "        answer += ' | ' + reply.split(b'\\r\\n\\r\\n')[-1].decode()\n"
        "    s.close()\n"
        "    return answer\n"
    )


#: Cell code filling /dev/shm, then /tmp, in 8 MiB steps, printing the running total in
#: MiB, or ``refused ERRNO`` once a write is refused; ``{steps}`` is the steps per folder.
FILL_TMPFS = """\
total = 0
chunk = b'x' * (8 << 20)
try:
    for folder in ('/dev/shm', '/tmp'):
        for index in range({steps}):
            with open(f'{{folder}}/fill{{index}}', 'wb') as handle:
                handle.write(chunk)
            total += 8
            print(total, flush=True)
except OSError as exc:
    print('refused', exc.errno, flush=True)
"""


@contextlib.contextmanager
def loopback_http(label: str) -> Iterator[int]:
    """A loopback HTTP server answering every GET with ``"{label} {path}"``; yields its port.

    It stands in for a package index or any upstream a sandboxed process may (or must
    not) reach.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"{label} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
