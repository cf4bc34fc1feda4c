"""run_script's subprocesses get the kernels' memory limit as a whole, not per process.

A script that starts processes each under the per-process rlimit but together far past
the limit is ended by its own memory cgroup (the mechanism kernels have where the server
may create cgroups) and the result says so; the cgroup is removed afterwards. Where no
memory cgroup can be had, the rlimit still bounds each process and health says which
mechanism holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.cgroups import KernelCgroups
from python_mcp_server.server.services import Services
from tests.helpers import call
from tests.sandbox_support import require_bwrap

LIMIT_MB = 256
SANDBOXED = {
    "sandbox": "bwrap",
    "max_memory_mb": LIMIT_MB,
    "kernel_network": "deny",
    "kernel_pool_size": 0,
}

#: Starts 4 children that each take 40% of the limit (under the per-process rlimit) and
#: hold it until stdin closes; prints how many held it at once (said so and are alive).
MANY_PROCESSES = """\
import subprocess, sys
child = (
    "import sys\\n"
    "b = bytearray({chunk})\\n"
    "b[::4096] = b'x' * len(range(0, len(b), 4096))\\n"
    "print('held', flush=True)\\n"
    "sys.stdin.read()\\n"
)
procs = [
    subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True)
    for _ in range(4)
]
said = [p.stdout.readline() == "held\\n" for p in procs]
# Alive now, after all four answered: a child the OOM killer ended after it said so
# (cgroup v1 kills one process at a time) does not count.
held = sum(ok and p.poll() is None for ok, p in zip(said, procs))
for p in procs:
    p.stdin.close()
    p.wait()
print("held", held, flush=True)
"""

#: One allocation past the limit in one process.
ONE_PROCESS = "b = bytearray({size})\nprint('allocated')\n"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    require_bwrap()
    return SANDBOXED


def memory_cgroup() -> bool:
    cgroups = KernelCgroups.find()
    return cgroups is not None and cgroups.memory


def script_cgroups(services: Services) -> list[Path]:
    cgroups = services.launcher.cgroups  # type: ignore[attr-defined]
    if cgroups is None:
        return []
    return [c for base in cgroups.bases.values() for c in base.glob("kscript-*")]


async def test_processes_of_a_script_share_one_memory_limit(
    client: Client[Any], services: Services, workspace: Path
) -> None:
    chunk = LIMIT_MB * 2 // 5 << 20
    (workspace / "scripts" / "many.py").write_text(MANY_PROCESSES.format(chunk=chunk))
    if not memory_cgroup():  # each process alone is still bounded by the rlimit
        assert services.limits.memory_limit_by == "rlimit+tmpfs-size"
        (workspace / "scripts" / "one.py").write_text(ONE_PROCESS.format(size=LIMIT_MB << 20))
        result = await call(client, "run_script", path="scripts/one.py")
        assert result["status"] == "error"
        assert "MemoryError" in result["stderr"]
        return
    assert services.limits.memory_limit_by == "cgroup"
    result = await call(client, "run_script", path="scripts/many.py", timeout=120)
    assert result["status"] == "error", result
    assert f"memory limit of {LIMIT_MB} MiB" in result["message"], result
    assert "held 4" not in result["stdout"], result  # never all four at once
    assert script_cgroups(services) == []  # removed once the script ended
    # Under the limit, the same script holds all four at once.
    small = MANY_PROCESSES.format(chunk=LIMIT_MB // 8 << 20)
    (workspace / "scripts" / "small.py").write_text(small)
    result = await call(client, "run_script", path="scripts/small.py", timeout=120)
    assert result["status"] == "ok", result
    assert result["stdout"] == "held 4\n"
    assert result["message"] is None
    assert script_cgroups(services) == []


async def test_a_script_cannot_outgrow_the_process_limit_of_its_cgroup(
    client: Client[Any], services: Services, workspace: Path
) -> None:
    """The script's pids cgroup (or RLIMIT_NPROC) caps its processes as a kernel's."""
    limit = services.launcher.max_tasks  # type: ignore[attr-defined]
    assert limit is not None
    code = (
        "import os\nmade = 0\ntry:\n"
        f"    for _ in range({limit} + 16):\n"
        "        if os.fork() == 0:\n"
        "            os.pause()\n"
        "        made += 1\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno, made)\n"
    )
    (workspace / "scripts" / "forks.py").write_text(code)
    result = await call(client, "run_script", path="scripts/forks.py", timeout=120)
    line = result["stdout"].strip().split()
    assert line[:1] == ["refused"], result
    assert int(line[2]) < limit
