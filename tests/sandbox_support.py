"""Whether the bubblewrap sandbox works on this machine, for the tests that need it.

CI (``.ci/run``) installs bubblewrap and sets ``PMCP_REQUIRE_SANDBOX=1``: there a missing
or broken sandbox fails the sandbox tests instead of skipping them.
"""

from __future__ import annotations

import functools
import os

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
