"""The command with forked, preloaded kernels: nothing outlives the server, however it ends."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TypeVar

import psutil
import pytest

from tests.e2e.conftest import StartServer, assert_gone
from tests.e2e.test_lifecycle import open_sessions
from tests.sandbox_support import require_bwrap

T = TypeVar("T")

FORKED = {"MCP_SANDBOX": "none", "MCP_KERNEL_PRELOAD": "numpy", "MCP_KERNEL_FORK": "true"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_template_and_forked_kernels_end_with_the_server(
    start_server: StartServer, sig: int
) -> None:
    server = start_server(env=FORKED)
    pids = await open_sessions(server, ["a", "b"])  # the kernels, the pool and the template
    server_children = {p.pid for p in psutil.Process(server.process.pid).children()}
    (template,) = [p for p in pids if p in server_children]  # the kernels are its children
    forked = {p.pid for p in psutil.Process(template).children()}
    assert len(forked) >= 2
    # The sessions' kernels are among them; the pool may have forked more since the
    # sessions were listed: each must end as well.
    assert {pid for pid in pids if pid != template} <= forked | server.kernel_pids()
    pids |= forked
    server.process.send_signal(sig)
    server.process.wait(20)
    # After SIGKILL no shutdown ran: each kernel watches the server, the template its stdin.
    assert_gone(pids, timeout=20)


def _read(attribute: Callable[[], T], gone: T) -> T:
    """A process's attribute, or ``gone`` for one that ended since the tree was listed
    (the pool goes on starting kernels: a start's short-lived steps come and go)."""
    try:
        return attribute()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return gone


SANDBOX_FORKED = {"MCP_SANDBOX": "bwrap", "MCP_KERNEL_PRELOAD": "json"}  # forked by default


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_sandboxed_template_and_its_kernels_end_with_the_server(
    start_server: StartServer, sig: int
) -> None:
    require_bwrap()
    server = start_server(env=SANDBOX_FORKED)
    await open_sessions(server, ["a", "b"])
    tree = psutil.Process(server.process.pid).children(recursive=True)
    forked = [p for p in tree if '"sandboxed": true' in " ".join(_read(p.cmdline, []))]
    # the template proper, each kernel
    assert len(forked) >= 1 + 2
    # the template's pid 1, each kernel's waiter and init: the reaper program
    # (``infra/kernels/reaper.py``)
    reapers = [p for p in tree if _read(p.exe, "").startswith("/memfd:reaper")]
    assert len(reapers) >= 1 + 2 * 2
    server.process.send_signal(sig)
    server.process.wait(20)
    # After SIGKILL no shutdown ran: bubblewrap's --die-with-parent ends the template's
    # sandbox, whose pid namespace holds every kernel it forked.
    assert_gone({p.pid for p in tree}, timeout=20)
