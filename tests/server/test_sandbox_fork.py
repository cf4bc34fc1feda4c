"""Sandboxed kernels forked from a sandboxed template (MCP_SANDBOX_FORK, the default):
each as isolated from the others, and from the template, as a bubblewrap kernel; limits
per kernel."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.sandbox_fork import SandboxForkLauncher
from python_mcp_server.infra.kernels.sandbox_template import isolation_plan, parent_pid
from python_mcp_server.server.services import Services
from tests.helpers import call, run, wait_for_new_kernel
from tests.huge_page_support import huge_kib, huge_pages_on_request
from tests.sandbox_support import require_bwrap

MAX_PROCESSES = 64
FORKED = {
    "sandbox": "bwrap",
    "kernel_preload": "numpy",
    "max_memory_mb": 512,
    "max_kernel_file_mb": 1,
    "max_kernel_processes": MAX_PROCESSES,
}
NAMESPACES = ("mnt", "pid", "net", "ipc", "uts", "user", "cgroup")

PROBE = (
    "import json, os, random, socket, numpy\n"
    "from ipykernel.kernelapp import IPKernelApp\n"
    "connection = IPKernelApp.instance().connection_file\n"
    "open(f'/tmp/mine-{NAME}', 'w').write('x')\n"
    "open(f'/dev/shm/mine-{NAME}', 'w').write('x')\n"
    "print(json.dumps({\n"
    "    'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),\n"
    "    'tmp': sorted(os.listdir('/tmp')), 'shm': sorted(os.listdir('/dev/shm')),\n"
    "    'connection': connection, 'runtime': sorted(os.listdir(os.path.dirname(connection))),\n"
    "    'random': random.random(), 'numpy': float(numpy.random.rand()),\n"
    "    'uid': os.getuid(), 'host': socket.gethostname(),\n"
    "}))\n"
)


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


async def sessions(client: Client[Any], *names: str) -> None:
    for name in names:
        await call(client, "create_session", session_id=name)


async def probe(client: Client[Any], name: str) -> dict[str, Any]:
    result = await run(client, f"NAME = {name!r}\n" + PROBE, session_id=name)
    assert result["status"] == "ok", result
    found: dict[str, Any] = json.loads(result["stdout"])
    return found


def kernel_process(services: Services, name: str) -> psutil.Process:
    """The forked kernel of a session, on the host: its waiter's child's child."""
    waiter = psutil.Process(services.sessions.get(name).kernel_pid)
    (init,) = waiter.children()
    (kernel,) = init.children()  # no egress forwarder: the server serves its port
    return kernel


def namespaces(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def shared_objects(process: psutil.Process, *, tree: bool = True) -> set[str]:
    """The sockets and pipes a process (with its descendants: ``tree``) holds open."""
    found: set[str] = set()
    for member in [process, *(process.children(recursive=True) if tree else ())]:
        folder = f"/proc/{member.pid}/fd"
        for fd in os.listdir(folder):
            try:
                target = os.readlink(f"{folder}/{fd}")
            except OSError:
                continue
            if target.startswith(("socket:", "pipe:")):  # each named by its inode
                found.add(target)
    return found


def cgroups(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return {
        controllers: path
        for _, controllers, path in (line.split(":", 2) for line in lines)
        if controllers in ("memory", "pids")
    }


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_forked_kernels_see_nothing_of_each_other(
    client: Client[Any], services: Services
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    await sessions(client, "a", "b")
    a = await probe(client, "a")
    b = await probe(client, "b")
    a_again = await probe(client, "a")
    assert launcher.forked >= 2, launcher.template_problem
    # its own processes only: its init and itself
    for seen in (a, b):
        assert seen["pids"] == [1, 2]
        assert seen["uid"] == 65534
        assert seen["host"] == "sandbox"
    # its own /tmp and /dev/shm (in /tmp also the folders leading to its own mounts)
    assert "mine-b" in b["tmp"]
    assert "mine-a" not in b["tmp"]
    assert "mine-a" in a_again["tmp"]
    assert "mine-b" not in a_again["tmp"]
    assert b["shm"] == ["mine-b"]
    assert a_again["shm"] == ["mine-a"]
    # its own runtime folder, holding only its own connection file and sockets
    a_folder, b_folder = Path(a["connection"]).parent, Path(b["connection"]).parent
    assert a_folder != b_folder
    for seen in (a, b):
        stem = Path(seen["connection"]).stem
        assert seen["runtime"]
        assert all(name.startswith(stem) for name in seen["runtime"])
    peek = await run(
        client,
        f"import os\nprint(os.path.exists({a['connection']!r}), os.path.exists({str(a_folder)!r}))",
        session_id="b",
    )
    assert peek["stdout"] == "False False\n"
    # distinct random state
    assert len({a["random"], b["random"], a_again["random"]}) == 3
    assert len({a["numpy"], b["numpy"], a_again["numpy"]}) == 3
    # on the host: namespaces, descriptors and cgroups of their own
    kernel_a, kernel_b = kernel_process(services, "a"), kernel_process(services, "b")
    (template,) = launcher.templates
    waiter = psutil.Process(services.sessions.get("a").kernel_pid)
    template_proper = waiter.parent()
    assert template_proper is not None
    assert template.descends(template_proper.pid)
    assert template.descends(kernel_a.pid)
    assert not template.descends(os.getpid())  # the server is no process of its sandbox
    assert not template.descends(template.pid)
    if huge_pages_on_request():  # its memory made huge pages, its filter let it
        assert huge_kib(template_proper.pid) > 0
    ns_a, ns_b, ns_t = (namespaces(p.pid) for p in (kernel_a, kernel_b, template_proper))
    for ns in NAMESPACES:
        assert len({ns_a[ns], ns_b[ns], ns_t[ns]}) == 3, ns
    held_a, held_b = shared_objects(kernel_a), shared_objects(kernel_b)
    assert held_a
    assert held_b
    assert not held_a & held_b
    assert not (held_a | held_b) & shared_objects(template_proper, tree=False)
    groups_a, groups_b = cgroups(kernel_a.pid), cgroups(kernel_b.pid)
    assert groups_a.keys() == {"memory", "pids"}
    for controller in groups_a:
        assert groups_a[controller] != groups_b[controller]
        assert groups_a[controller].endswith("/" + Path(a["connection"]).stem)


# No pool: the crashed kernel's replacement is forked for it, not taken ready-made.
@pytest.mark.parametrize("settings_overrides", [{**FORKED, "kernel_pool_size": 0}])
async def test_a_crash_touches_no_other_kernel(client: Client[Any], services: Services) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    await sessions(client, "a", "b")
    assert (await run(client, "kept = 41", session_id="b"))["status"] == "ok"
    assert (await run(client, "1", session_id="a"))["status"] == "ok"
    session_a = services.sessions.get("a")
    old_pid = session_a.kernel_pid
    pid_b = services.sessions.get("b").kernel_pid
    forked = launcher.forked
    crash = await run(
        client, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", session_id="a"
    )
    assert crash["status"] == "error"
    await wait_for_new_kernel(session_a, old_pid)
    assert (await run(client, "kept + 1", session_id="b"))["result"] == "42"
    assert services.sessions.get("b").kernel_pid == pid_b
    assert (await run(client, "2 + 2", session_id="a"))["result"] == "4"
    assert launcher.forked > forked  # the template forked its replacement
    assert all(template.is_alive() for template in launcher.templates)


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_limits_hold_per_kernel(client: Client[Any], services: Services) -> None:
    spawn = (
        "import threading\n"
        "stop, started = threading.Event(), 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        threading.Thread(target=stop.wait).start()\n"
        "        started += 1\n"
        "except RuntimeError:\n"
        "    pass\n"
        "stop.set()\n"
        "print(started)\n"
    )
    await sessions(client, "a", "b")
    first = await run(client, spawn, session_id="a")
    assert 0 < int(first["stdout"]) < MAX_PROCESSES
    second = await run(client, spawn, session_id="b")  # a's threads never counted here
    assert 0 < int(second["stdout"]) < MAX_PROCESSES
    kernel = kernel_process(services, "a")
    groups = cgroups(kernel.pid)
    root = Path("/sys/fs/cgroup")
    pids_max = root / "pids" / groups["pids"].lstrip("/") / "pids.max"
    assert pids_max.read_text().strip() == str(MAX_PROCESSES)
    memory = root / "memory" / groups["memory"].lstrip("/") / "memory.limit_in_bytes"
    if memory.exists():
        assert int(memory.read_text()) == 512 * 2**20
    result = await run(client, "x = bytearray(700 * 2**20)", session_id="a")
    assert result["status"] == "error"
    assert result["error"]["code"] == "MEMORY_LIMIT_EXCEEDED"
    assert (await run(client, "1 + 1", session_id="b"))["result"] == "2"


def test_a_parent_is_read_past_a_name_that_looks_like_fields() -> None:
    """A kernel names its own processes: a name of parentheses, spaces and digits must not
    pass for the fields after it in /proc/<pid>/stat (which ``descends`` reads)."""
    named = (
        "import ctypes, sys\n"
        "ctypes.CDLL(None).prctl(15, b'x) S 1 1 (', 0, 0, 0)\n"
        "print('named', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", named], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"named\n"
        assert Path(f"/proc/{child.pid}/comm").read_text() == "x) S 1 1 (\n"
        assert parent_pid(child.pid) == os.getpid()
    finally:
        child.kill()
        child.wait()
    assert parent_pid(child.pid) is None  # gone


def test_the_plan_is_a_bwrap_kernels_mounts() -> None:
    args = [
        "--unshare-net",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--perms", "1777", "--size", "100", "--tmpfs", "/tmp",
        "--perms", "0755", "--dir", "/run/x",
        "--ro-bind", "/env", "/env", "--bind", "/ws", "/ws",
    ]  # fmt: skip
    ops, sources, own_network = isolation_plan(args)
    assert own_network
    assert ops == [
        ["dev", "/dev"],
        ["proc", "/proc"],
        ["tmpfs", "/tmp", 100, 0o1777],
        ["dir", "/run/x", 0o755],
        ["bind", "/env", 2],
        ["bind", "/ws", 3],
    ]
    assert sources == [(Path("/env"), True), (Path("/ws"), False)]
    with pytest.raises(ValueError, match="--symlink"):
        isolation_plan(["--symlink", "a", "b"])
    with pytest.raises(ValueError, match="no size"):
        isolation_plan(["--tmpfs", "/tmp"])


@pytest.mark.parametrize("settings_overrides", [{**FORKED, "kernel_pool_size": 0}])
async def test_a_retired_template_leaves_its_kernels_running(
    client: Client[Any], services: Services
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    await sessions(client, "a")
    assert (await run(client, "kept = 1", session_id="a"))["status"] == "ok"
    (old,) = launcher.templates
    await services.sessions.factory.environment_changed()  # packages changed: it stays
    assert launcher.templates == [old]
    launcher._retire(old)  # as when it failed, or the server stops
    assert not old.is_alive()
    assert (await run(client, "kept + 1", session_id="a"))["result"] == "2"
    await sessions(client, "b")
    assert (await run(client, "3", session_id="b"))["result"] == "3"
    (new,) = launcher.templates
    assert new is not old
    assert new.is_alive()


@pytest.mark.parametrize("settings_overrides", [{**FORKED, "kernel_pool_size": 0}])
async def test_a_kernels_waiter_and_init_hold_a_few_pages(
    client: Client[Any], services: Services
) -> None:
    """Both become the reaper program (``infra/kernels/reaper.py``) once the kernel runs:
    none of the template's pages stay copied in them."""
    await sessions(client, "a")
    assert (await run(client, "1 + 1", session_id="a"))["result"] == "2"
    waiter = psutil.Process(services.sessions.get("a").kernel_pid)
    (init,) = waiter.children()
    deadline = asyncio.get_running_loop().time() + 30
    while not all(p.exe().startswith("/memfd:reaper") for p in (waiter, init)):
        assert asyncio.get_running_loop().time() < deadline, "they did not become the reaper"
        await asyncio.sleep(0.02)
    for process in (waiter, init):
        assert process.memory_full_info().uss < 256 * 1024
    (kernel,) = init.children()
    assert "python" in kernel.exe()
