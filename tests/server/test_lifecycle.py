"""A session's life through the real protocol: exit(), kernels lost between calls, deleting
and replacing while busy, a replacement that cannot start, a hung idle kernel, forged
kernel messages. Every test checks that no kernel process outlives its session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import psutil
import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.sandbox_fork import SandboxForkLauncher
from python_mcp_server.server.services import Services
from tests.helpers import call, kernel_children, run, tool_error, wait_for_new_kernel, wait_gone
from tests.sandbox_support import BOTH_KERNEL_ORIGINS

pytestmark = BOTH_KERNEL_ORIGINS


def expected_kernels(services: Services) -> set[int]:
    """The kernel processes that should run: one tree (a sandbox wraps the kernel) per live
    session, plus the pool's."""
    roots = {s.kernel_pid for s in services.sessions.all() if s.client.is_alive()}
    roots |= {c.kernel.pid for c in services.sessions.pool._ready}
    pids = set()
    for root in roots:
        with contextlib.suppress(psutil.Error, TypeError):
            pids |= {root, *(p.pid for p in psutil.Process(root).children(recursive=True))}
    return pids | template_processes(services)


def template_processes(services: Services) -> set[int]:
    """The fork templates' own processes, never a kernel they forked: an unsandboxed
    template alone; a sandboxed one's bubblewraps, pid 1 and template proper (the walk
    stops at each kernel's waiter, a reaper the template proper forked)."""
    launcher = services.launcher
    templates = {template.pid for template in getattr(launcher, "templates", ())}
    if not isinstance(launcher, SandboxForkLauncher):
        return templates
    found: set[int] = set()
    stack = []
    for pid in templates:
        with contextlib.suppress(psutil.Error):
            stack.append(psutil.Process(pid))
    while stack:
        process = stack.pop()
        with contextlib.suppress(psutil.Error):
            parent = process.parent()
            if process.exe().startswith("/memfd:reaper") and "python" in (
                parent.exe() if parent is not None else ""
            ):
                continue  # a kernel's waiter (the template's pid 1, under bwrap, is one too)
            found.add(process.pid)
            stack += process.children()
    return found


async def assert_no_stray_kernel(services: Services) -> None:
    """Every kernel process belongs to a live session or the pool (a bounded wait: a kernel
    being ended is given time to go)."""
    assert await services.sessions.pool.wait_full(60)  # no pool start is under way
    for _ in range(100):
        stray = kernel_children() - expected_kernels(services)
        if not stray:
            return
        await asyncio.sleep(0.05)
    detail = []
    for pid in stray:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            detail.append((pid, proc.status(), proc.ppid(), proc.cmdline()[:3]))
    raise AssertionError(f"kernel processes that belong to no session: {detail}")


async def wait_status(client: Client[Any], session_id: str, status: str) -> None:
    for _ in range(400):
        listing = await call(client, "list_sessions")
        found = [s for s in listing["sessions"] if s["session_id"] == session_id]
        if found and found[0]["status"] == status:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"session {session_id} never became {status}")


async def test_exit_restarts_the_kernel_at_once_and_says_so(
    client: Client[Any], services: Services
) -> None:
    await run(client, "kept = 1")
    old_pid = services.sessions.get("default").kernel_pid
    assert old_pid is not None
    for code in ("exit()", "quit()"):
        data = await run(client, f"print('bye')\n{code}")
        assert data["status"] == "ok"
        assert data["stdout"] == "bye\n"
        assert data["kernel_restarted"] is True
        assert "exit() ends the kernel" in data["message"]
        assert "exit()" in data["kernel_replacement"]["reason"]
        assert "To exit, you will have to" not in str(data)
    assert not wait_gone({old_pid})
    after = await run(client, "'kept' in dir()")
    # the exit was reported by the call that made it, not again by the next one
    assert (after["status"], after["result"], after["kernel_restarted"]) == ("ok", "False", False)
    await assert_no_stray_kernel(services)


async def test_deleting_a_busy_session_closes_it_without_a_new_kernel(
    client: Client[Any], services: Services
) -> None:
    await call(client, "create_session", session_id="doomed")
    await run(client, "1", session_id="doomed")
    pid = services.sessions.get("doomed").kernel_pid
    assert pid is not None
    running = asyncio.create_task(
        run(
            client, "import time\nprint('started', flush=True)\ntime.sleep(60)", session_id="doomed"
        )
    )
    await wait_status(client, "doomed", "busy")
    queued = asyncio.create_task(
        client.call_tool(
            "run_python_code", {"code": "1", "session_id": "doomed"}, raise_on_error=False
        )
    )
    session = services.sessions.get("doomed")
    for _ in range(400):
        if session.callers == 2:
            break
        await asyncio.sleep(0.01)
    assert session.callers == 2
    deleted = await call(client, "delete_session", session_id="doomed")
    assert deleted["action"] == "deleted"
    data = await asyncio.wait_for(running, 30)
    assert data["status"] == "error"
    assert data["error"]["code"] == "SESSION_CLOSED"
    assert "deleted" in data["error"]["evalue"]
    assert "killed from outside" not in str(data)
    assert data["kernel_restarted"] is False
    refused = await asyncio.wait_for(queued, 30)
    assert refused.is_error
    assert refused.content[0].text.startswith("SESSION_CLOSED")  # type: ignore[union-attr]
    assert "did not run" in refused.content[0].text  # type: ignore[union-attr]
    assert not wait_gone({pid})
    await assert_no_stray_kernel(services)
    text = await tool_error(client, "run_python_code", {"code": "1", "session_id": "doomed"})
    assert text.startswith("SESSION_NOT_FOUND")


async def test_delete_during_a_replacement_keeps_no_kernel(
    client: Client[Any], services: Services
) -> None:
    """A cell that ignores interrupts times out; while its kernel is being replaced, the
    session is deleted: the new kernel is ended, not kept."""
    await call(client, "create_session", session_id="swap")
    session = services.sessions.get("swap")
    replacing, proceed = asyncio.Event(), asyncio.Event()
    original = session.lifecycle._kernel_source

    async def held_source(s: Any) -> Any:  # holds the replacement until the delete began
        replacing.set()
        await proceed.wait()
        return await original(s)

    session.lifecycle._kernel_source = held_source
    running = asyncio.create_task(
        run(
            client,
            "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
            "    except KeyboardInterrupt:\n        pass\n",
            session_id="swap",
            timeout=0.5,
        )
    )
    await asyncio.wait_for(replacing.wait(), 30)
    assert (await call(client, "get_kernel_health", session_id="swap"))["status"] == "starting"
    deleting = asyncio.create_task(call(client, "delete_session", session_id="swap"))
    for _ in range(400):
        if session.closed:
            break
        await asyncio.sleep(0.01)
    assert session.closed
    proceed.set()
    await asyncio.wait_for(deleting, 30)
    data = await asyncio.wait_for(running, 60)
    assert data["error"]["code"] == "SESSION_CLOSED"
    await assert_no_stray_kernel(services)


@pytest.mark.parametrize("settings_overrides", [{"kernel_pool_size": 0}])
async def test_a_failing_replacement_start_is_reported_and_leaks_nothing(
    client: Client[Any], services: Services
) -> None:
    await run(client, "1")
    session = services.sessions.get("default")
    pid = session.kernel_pid
    assert pid is not None
    factory = services.sessions.factory
    real_python = factory.python_for
    factory.python_for = lambda _venv: "/nonexistent/python3"  # the launch itself fails
    os.kill(pid, signal.SIGKILL)
    await wait_status(client, "default", "dead")
    data = await run(client, "print('never')")
    assert data["status"] == "error"
    assert data["error"]["code"] == "KERNEL_START_FAILED"
    assert data["code_ran"] is False
    assert "did not run" in data["message"]
    await assert_no_stray_kernel(services)
    factory.python_for = real_python
    data = await run(client, "21 * 2")
    assert (data["status"], data["result"], data["kernel_restarted"]) == ("ok", "42", True)
    await assert_no_stray_kernel(services)


@pytest.mark.parametrize("settings_overrides", [{"health_interval": 0.3}])
async def test_monitor_replaces_a_kernel_that_stops_answering_while_idle(
    client: Client[Any], services: Services
) -> None:
    services.health.config = type(services.health.config)(
        interval=0.3, max_restarts=3, probe_timeout=0.5
    )
    await run(client, "1")
    session = services.sessions.get("default")
    old_pid = session.kernel_pid
    assert old_pid is not None
    tree = [psutil.Process(old_pid), *psutil.Process(old_pid).children(recursive=True)]
    for process in tree:  # hung: alive, but never answers again (a sandbox wraps Python)
        process.send_signal(signal.SIGSTOP)
    try:
        await wait_for_new_kernel(session, old_pid)
    finally:
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGCONT)
    assert not wait_gone({p.pid for p in tree})
    # The next call runs at once on the new kernel and is told what happened.
    data = await run(client, "1 + 1", timeout=10)
    assert (data["status"], data["result"]) == ("ok", "2")
    assert data["kernel_restarted"] is True
    assert "stopped answering" in data["kernel_replacement"]["reason"]
    health = await call(client, "get_kernel_health")
    assert health["status"] == "idle"
    await assert_no_stray_kernel(services)


FORGE = """
k = get_ipython().kernel
parent = k.get_parent()['header']
def forge(header, content):
    k.session.send(k.iopub_socket, {'header': header, 'parent_header': parent,
                                    'metadata': {}, 'content': content})
forge({'msg_id': 'f1', 'msg_type': 7}, {'name': 'stdout', 'text': 'bad type'})
forge({'msg_id': 'f2'}, {'name': 'stdout', 'text': 'no type'})
forge({'msg_id': 'f3', 'msg_type': 'stream'}, '[1, 2, 3]')
forge({'msg_id': 'f4', 'msg_type': 'stream'}, {'name': 'stdout', 'text': 5})
forge({'msg_id': 'f5', 'msg_type': 'display_data'}, {'data': 'not a dict'})
forge({'msg_id': 'f6', 'msg_type': 'error'}, {'traceback': 12})
print('after the forgeries')
"""


async def test_forged_malformed_iopub_messages_are_dropped(
    client: Client[Any], services: Services
) -> None:
    for _ in range(2):
        data = await run(client, FORGE, timeout=15)
        assert data["status"] == "ok", data
        assert "after the forgeries" in data["stdout"]
        assert data["kernel_restarted"] is False
    assert (await run(client, "6 * 7"))["result"] == "42"
    await assert_no_stray_kernel(services)
