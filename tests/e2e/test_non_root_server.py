"""A server that is not root forks its sandboxed kernels from a sandboxed template too.

The real command runs as a uid of no user (``tests/nonroot_support.py``) with the default
sandbox and a preload; its detached mounts come from its mount helper
(``infra/kernels/mount_helper.py``). The escape suite (``test_sandbox_escapes*.py``) runs
against such a server as well; here: that it forks, that its kernels are distinct
processes with their own random state and their own process limit, that they cannot make
user namespaces while their template can, and that nothing of the environment or the
workspace reaches the template.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastmcp import Client

from tests.e2e.conftest import LaunchedServer
from tests.helpers import call, run
from tests.nonroot_support import SERVER_UID, TOKEN, non_root_server
from tests.sandbox_support import require_bwrap

#: Processes and threads per kernel (RLIMIT_NPROC, counted in its own user namespace).
MAX_PROCESSES = 64
#: Children each kernel starts at once: two kernels' together would pass the limit.
CHILDREN = 40

PLANTED_PTH = "import sys; sys.planted_pth = getattr(sys, 'planted_pth', 0) + 1\n"
PLANTED_SITE = "import sys\nsys.planted_site = getattr(sys, 'planted_site', 0) + 1\n"

#: Starts ``{count}`` sleeping children and prints how many started.
SPAWN = """\
import subprocess
children = globals().setdefault('children', [])
started = 0
try:
    for _ in range({count}):
        children.append(subprocess.Popen(['sleep', '600']))
        started += 1
except OSError as exc:
    print('refused', exc.errno)
print(started)
"""
REAP = "for child in children:\n    child.kill()\n    child.wait()\nchildren.clear()"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedServer]:
    require_bwrap()
    env = {
        "MCP_SANDBOX": "bwrap",
        "MCP_KERNEL_PRELOAD": "json",
        "MCP_KERNEL_POOL_SIZE": "0",
        "MCP_MAX_KERNEL_PROCESSES": str(MAX_PROCESSES),
    }
    with non_root_server(env, tmp_path_factory.mktemp("non-root")) as launched:
        yield launched


@pytest.fixture
async def client(server: LaunchedServer) -> AsyncIterator[Client[Any]]:
    async with Client(server.mcp_url, auth=TOKEN, timeout=120) as connected:
        yield connected


def new_kernels(server: LaunchedServer, before: set[int]) -> set[int]:
    """Kernels of ``server`` not in ``before``: pid 2 of a pid namespace in the template's
    (the template itself shares their command line)."""
    found = set()
    for pid in server.kernel_pids() - before:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            levels = next(line for line in status.splitlines() if line.startswith("NSpid:"))
            if len(levels.split()) == 4 and levels.split()[-1] == "2":
                found.add(pid)
    return found


def status_of(pid: int) -> dict[str, str]:
    """Fields of /proc/<pid>/status."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {name: value.strip() for name, value in (line.split(":", 1) for line in lines)}


def template_of(kernel: int) -> psutil.Process:
    """The template proper that forked ``kernel`` (its init's waiter's parent)."""
    template = psutil.Process(kernel).parents()[2]
    assert '"mode": "template"' in " ".join(template.cmdline())
    return template


async def test_it_forks_its_sandboxed_kernels(client: Client[Any], server: LaunchedServer) -> None:
    assert psutil.Process(server.process.pid).uids().real == SERVER_UID
    health = await call(client, "health_check")
    assert health["preload"]["mode"] == "fork", health["preload"]
    before = server.kernel_pids()
    await call(client, "create_session", session_id="fork")
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "refused = libc.unshare(0x10000000) == -1 and ctypes.get_errno()\n"
        "print(open('/proc/sys/user/max_user_namespaces').read().strip(), refused)\n"
        "'\"sandboxed\": true' in open('/proc/self/cmdline').read()"
    )
    result = await run(client, code, session_id="fork")
    assert result["result"] == "True", server.log()  # forked from the sandboxed template
    assert result["stdout"].split() == ["0", "1"]  # no user namespaces: EPERM
    health = await call(client, "health_check")
    assert health["preload"]["unforked"] == {}
    (kernel,) = new_kernels(server, before)
    template = template_of(kernel)
    assert template.uids().real == SERVER_UID
    assert template.status() != "zombie"
    status = status_of(template.pid)
    assert status["Seccomp"] == "2"  # its own filter, which lets children isolate
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0
    await call(client, "delete_session", session_id="fork")


async def test_kernels_are_distinct_processes_with_their_own_random_state(
    client: Client[Any], server: LaunchedServer
) -> None:
    before = server.kernel_pids()
    show = (
        "import json, os, random\n"
        "print(json.dumps([os.readlink('/proc/self/ns/pid'), os.readlink('/proc/self/ns/mnt'),"
        " random.random(), os.getpid()]))"
    )
    seen = []
    for name in ("r1", "r2"):
        await call(client, "create_session", session_id=name)
        seen.append(json.loads((await run(client, show, session_id=name))["stdout"]))
    (pid_ns1, mnt_ns1, random1, pid1), (pid_ns2, mnt_ns2, random2, pid2) = seen
    assert pid_ns1 != pid_ns2
    assert mnt_ns1 != mnt_ns2
    assert random1 != random2
    assert pid1 == pid2 == 2  # each the second process of its own pid namespace
    assert len(new_kernels(server, before)) == 2
    for name in ("r1", "r2"):
        await call(client, "delete_session", session_id=name)


async def test_each_kernel_counts_its_own_processes(client: Client[Any]) -> None:
    """RLIMIT_NPROC counts in each kernel's own user namespace, as in a bubblewrap
    kernel's: two kernels start ``CHILDREN`` children each, more than the limit together;
    a kernel alone is still held at the limit."""
    for name in ("p1", "p2"):
        await call(client, "create_session", session_id=name)
        started = await run(client, SPAWN.format(count=CHILDREN), session_id=name)
        assert started["stdout"] == f"{CHILDREN}\n", started
    more = await run(client, SPAWN.format(count=CHILDREN), session_id="p1")
    refused, count = more["stdout"].splitlines()
    assert refused == "refused 11"  # EAGAIN
    assert 0 <= int(count) < MAX_PROCESSES - CHILDREN
    for name in ("p1", "p2"):
        await run(client, REAP, session_id=name)
        await call(client, "delete_session", session_id=name)


async def test_the_template_runs_nothing_of_the_environment_or_the_workspace(
    client: Client[Any], server: LaunchedServer
) -> None:
    """What an install or a kernel could write (a ``.pth`` file, a ``sitecustomize`` and a
    module in the environment, a module in the workspace) runs in the kernel as often as
    the environment's own interpreter runs it, never in the template, whose view holds
    neither folder and which maps no file of them."""
    environment = Path(server.env["MCP_STATE_DIR"]) / "venvs" / "default"
    (site,) = environment.glob("lib/python*/site-packages")
    (site / "zz_planted.pth").write_text(PLANTED_PTH)
    (site / "sitecustomize.py").write_text(PLANTED_SITE)
    (site / "planted_module.py").write_text("VALUE = 7\n")
    (server.workspace / "in_workspace.py").write_text("VALUE = 8\n")
    show = (
        "import sys, planted_module\nprint(sys.planted_pth, sys.planted_site, planted_module.VALUE)"
    )
    before = server.kernel_pids()
    await call(client, "create_session", session_id="planted")
    seen = await run(client, show, session_id="planted")
    alone = await asyncio.to_thread(
        subprocess.run,
        [str(environment / "bin" / "python"), "-c", show],
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen["stdout"] == alone.stdout, seen
    assert alone.stdout.endswith(" 1 7\n")
    found = await run(
        client, "import in_workspace\nprint(in_workspace.VALUE)", session_id="planted"
    )
    assert found["stdout"] == "8\n"
    (kernel,) = new_kernels(server, before)
    template = template_of(kernel)
    view = Path(f"/proc/{template.pid}/root")
    assert not (view / site.relative_to("/")).exists()
    assert not list((view / server.workspace.relative_to("/")).iterdir())
    for mapped in template.memory_maps():
        assert not mapped.path.startswith((str(environment), str(server.workspace))), mapped
    names = set(template.environ())
    assert not {"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE"} & names
    await call(client, "delete_session", session_id="planted")
