"""Kernel confinement beyond mounts: who kernel code runs as, its seccomp filter, the memory
cgroup that counts tmpfs, and the refusal when no sandbox works (real kernels, real bwrap)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.cgroups import KernelCgroups
from python_mcp_server.infra.kernels.privileges import ACCESS_ACL, DEFAULT_ACL
from python_mcp_server.server.services import Services
from tests.helpers import call, run, tool_error
from tests.sandbox_support import BOTH_KERNEL_ORIGINS, FILL_TMPFS, require_bwrap

pytestmark = BOTH_KERNEL_ORIGINS

LIMIT_MB = 256
SANDBOXED = {"sandbox": "bwrap", "max_memory_mb": LIMIT_MB, "kernel_network": "deny"}

#: Prints the kernel's uid, its effective capabilities and its no_new_privs flag.
IDENTITY = """\
import os
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print(os.getuid(), os.getgid(), int(status['CapEff'], 16), status['NoNewPrivs'].strip())
"""

#: Calls ptrace, unshare and mount directly; prints each call's errno.
FORBIDDEN_CALLS = """\
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(number, *args):
    ctypes.set_errno(0)
    result = libc.syscall(number, *args)
    return ctypes.get_errno() if result == -1 else 'allowed'
print(errno_of({ptrace}, 16, 1, 0, 0),                       # PTRACE_ATTACH to pid 1
      errno_of({unshare}, 0x10000000),                       # CLONE_NEWUSER
      errno_of({mount}, b'none', b'/tmp', b'tmpfs', 0, None),
      errno_of({bpf}, 0, 0, 0))
"""


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


def expected_user() -> tuple[int, int]:
    """A root server's kernels run as nobody; anyone else's as that user."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    return os.getuid(), os.getgid()


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_kernel_runs_unprivileged_with_no_new_privs(
    client: Client[Any], services: Services
) -> None:
    out = (await run(client, IDENTITY))["stdout"].split()
    uid, gid = expected_user()
    assert out == [str(uid), str(gid), "0", "1"]
    assert int(out[0]) != 0
    enforced = services.limits.as_dict()
    assert enforced["seccomp"] is True
    assert enforced["kernel_user"].startswith("nobody" if os.geteuid() == 0 else "")


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_scripts_run_as_the_kernel_user_too(client: Client[Any], workspace: Path) -> None:
    (workspace / "scripts" / "who.py").write_text(IDENTITY)
    result = await call(client, "run_script", path="scripts/who.py")
    uid, gid = expected_user()
    assert result["stdout"].split() == [str(uid), str(gid), "0", "1"]


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_seccomp_refuses_ptrace_unshare_mount_bpf(client: Client[Any]) -> None:
    from python_mcp_server.infra.kernels.seccomp import syscall_number

    code = FORBIDDEN_CALLS.format(
        **{name: syscall_number(name) for name in ("ptrace", "unshare", "mount", "bpf")}
    )
    assert (await run(client, code))["stdout"] == "1 1 1 1\n"  # EPERM, each
    # Threads and child processes still work (clone without namespace flags).
    threads = "import threading, subprocess\nt = threading.Thread(target=print); t.start(); "
    threads += "t.join()\nprint(subprocess.run(['true']).returncode)"
    assert (await run(client, threads))["stdout"] == "\n0\n"


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_kernel_writes_the_workspace_but_the_state_folder_is_not_granted(
    client: Client[Any], workspace: Path, services: Services
) -> None:
    await call(client, "write_file", path="data/notes.txt", content="server\n")
    code = "open('data/notes.txt', 'a').write('kernel\\n')\nopen('outputs/k.txt', 'w').write('k')"
    assert (await run(client, code))["status"] == "ok"
    assert (workspace / "data" / "notes.txt").read_text() == "server\nkernel\n"
    assert (workspace / "outputs" / "k.txt").read_text() == "k"
    state = services.settings.state_path
    for name in (ACCESS_ACL, DEFAULT_ACL):
        assert name not in os.listxattr(state)
        assert name not in os.listxattr(services.settings.venvs_path)


def memory_mechanism() -> str:
    cgroups = KernelCgroups.find()
    return "cgroup" if cgroups is not None and cgroups.memory else "rlimit+tmpfs-size"


@pytest.mark.parametrize("settings_overrides", [SANDBOXED])
async def test_tmpfs_cannot_hold_more_than_the_memory_limit(
    client: Client[Any], services: Services
) -> None:
    assert services.limits.memory_limit_by == memory_mechanism()
    await run(client, "kept = 1")
    steps = LIMIT_MB // 8  # each folder alone could take the whole limit
    result = await run(client, FILL_TMPFS.format(steps=steps), timeout=60)
    lines = result["stdout"].split("\n")
    written = max((int(line) for line in lines if line.isdigit()), default=0)
    assert written < LIMIT_MB, result
    if result["status"] == "ok":  # refused by a full tmpfs: the kernel lives
        assert any(line.startswith("refused") for line in lines), result
    else:  # the cgroup's out-of-memory kill: a fresh kernel replaces it
        assert result["error"]["code"] in ("KERNEL_DIED", "MEMORY_LIMIT_EXCEEDED"), result
        assert result["kernel_restarted"] is True
    assert (await run(client, "6 * 7"))["result"] == "42"


@pytest.mark.parametrize("settings_overrides", [{**SANDBOXED, "bwrap_path": "/bin/false"}])
async def test_no_working_sandbox_refuses_kernels(client: Client[Any], services: Services) -> None:
    error = await tool_error(client, "run_python_code", {"code": "1 + 1"})
    assert error.startswith("SANDBOX_UNAVAILABLE: ")
    assert "--sandbox none" in error
    assert "bubblewrap" in error
    health = await call(client, "health_check")
    assert health["limits"]["enforced"]["sandbox"] == "unavailable"
    assert services.launcher.name == "unavailable"


@pytest.mark.parametrize("settings_overrides", [{"sandbox": "none"}])
async def test_sandbox_none_is_warned_in_health(client: Client[Any]) -> None:
    health = await call(client, "health_check")
    warnings = health["limits"]["enforced"]["warnings"]
    assert any("MCP_SANDBOX=none" in warning for warning in warnings)
    assert health["limits"]["enforced"]["memory_limit_by"] == "rlimit"
