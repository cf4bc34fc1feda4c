"""The bubblewrap launcher's command line, the start-up probe and per-kernel cgroups."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels.base import KernelLaunchRequest
from python_mcp_server.infra.kernels.cgroups import CgroupLimits, KernelCgroups
from python_mcp_server.infra.kernels.confine import Confinement
from python_mcp_server.infra.kernels.limits import MIB, LimitedLauncher, ResourceLimits
from python_mcp_server.infra.kernels.mounts import under
from python_mcp_server.infra.kernels.privileges import DROP_CAPABILITIES, KernelUser
from python_mcp_server.infra.kernels.sandbox import (
    BwrapLauncher,
    SandboxConfig,
    probe_bwrap,
)
from python_mcp_server.infra.kernels.seccomp import DENIED, build_filter, syscall_number
from python_mcp_server.infra.network.access import NetworkAccess
from tests.sandbox_support import require_bwrap


def mounts(args: list[str]) -> list[tuple[str, str]]:
    """(option, path) for every mount option after the root bind, in order."""
    found = []
    for index, arg in enumerate(args):
        if arg in ("--tmpfs", "--bind", "--ro-bind"):
            found.append((arg, args[index + 1]))
    return found[1:]  # drop --ro-bind / /


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "home"
    workspace = home / "project" / "ws"
    state = workspace / ".state"
    venvs = state / "venvs"
    for folder in (workspace, venvs / "default" / "bin", state / "run"):
        folder.mkdir(parents=True)
    return {"home": home, "ws": workspace, "state": state, "venvs": venvs}


def launcher(layout: dict[str, Path], network: str = "allow") -> BwrapLauncher:
    config = SandboxConfig(
        network=NetworkAccess(network),  # type: ignore[arg-type]
        hidden_paths=(layout["home"], layout["state"], layout["venvs"]),
        readable_paths=(Path(sys.prefix),),
    )
    return BwrapLauncher(layout["state"], ResourceLimits(), config)


def close(*launchers: BwrapLauncher) -> None:
    for item in launchers:
        asyncio.run(item.aclose())


def request(layout: dict[str, Path], python: str) -> KernelLaunchRequest:
    environment = Path(python).parent.parent
    return KernelLaunchRequest(
        python=python,
        cwd=layout["ws"],
        env={},
        writable_paths=(layout["ws"],),
        readable_paths=(environment,),
    )


def test_mounts_hide_parents_before_exposing_children(layout: dict[str, Path]) -> None:
    sandbox = launcher(layout)
    python = str(layout["venvs"] / "default" / "bin" / "python")
    runtime = layout["state"] / "run" / "kabc"
    runtime.mkdir()
    plan = mounts(sandbox.bwrap_args(request(layout, python), runtime))
    real = {k: os.path.realpath(v) for k, v in layout.items()}
    order = [path for _, path in plan]
    assert ("--tmpfs", real["home"]) in plan
    assert ("--bind", real["ws"]) in plan
    assert ("--tmpfs", real["state"]) in plan
    # Its own environment only, and read-only: sessions share it.
    assert ("--ro-bind", str(Path(real["venvs"]) / "default")) in plan
    assert not any(
        path == str(Path(real["venvs"]) / "default") for o, path in plan if o == "--bind"
    )
    assert ("--bind", os.path.realpath(runtime)) in plan
    assert ("--tmpfs", "/tmp") in plan
    assert ("--tmpfs", "/run") in plan
    assert order.index(real["home"]) < order.index(real["ws"]) < order.index(real["state"])
    assert order.index(real["state"]) < order.index(os.path.realpath(runtime))
    assert order.index(real["state"]) < order.index(str(Path(real["venvs"]) / "default"))
    close(sandbox)


def test_network_deny_adds_a_network_namespace(layout: dict[str, Path]) -> None:
    allow, deny = launcher(layout, "allow"), launcher(layout, "deny")
    runtime = layout["state"] / "run"
    assert "--unshare-net" not in allow.bwrap_args(request(layout, sys.executable), runtime)
    assert "--unshare-net" in deny.bwrap_args(request(layout, sys.executable), runtime)
    close(allow, deny)


def test_confinement_of_a_non_root_and_a_root_server(tmp_path: Path) -> None:
    own = Confinement().wrap("bwrap", ["--ro-bind", "/", "/"], ["python"])
    assert own[0] == "bwrap"
    assert own[-2:] == ["--", "python"]
    for flag in ("--unshare-pid", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in own
    assert own[own.index("--cap-drop") + 1] == "ALL"
    seccomp_file = tmp_path / "filter.bpf"
    user = KernelUser("nobody", 65534, 65534)
    dropped = Confinement(user, seccomp_file, "/usr/bin/setpriv").wrap(
        "bwrap", [], ["python"], cgroups=[tmp_path / "k1"]
    )
    # A shell joins the cgroup and opens the filter on fd 9, then execs bwrap.
    assert dropped[:2] == ["/bin/sh", "-c"]
    assert dropped[3:6] == [str(seccomp_file), str(tmp_path / "k1" / "cgroup.procs"), "--"]
    bwrap = dropped[6:]
    assert "--unshare-user" not in bwrap  # a user namespace would map the kernel to root
    assert bwrap[bwrap.index("--seccomp") + 1] == "9"
    assert [bwrap[i + 1] for i, a in enumerate(bwrap) if a == "--cap-add"] == list(
        DROP_CAPABILITIES
    )
    inner = bwrap[bwrap.index("--") + 1 :]
    assert inner[0] == "/usr/bin/setpriv"
    assert inner[-1] == "python"
    for option in ("--reuid=65534", "--regid=65534", "--no-new-privs", "--bounding-set=-all"):
        assert option in inner


def test_mounts_never_come_from_files_a_kernel_can_write(tmp_path: Path) -> None:
    """pyvenv.cfg's ``home =`` and a replaced ``bin/python`` link decide nothing: the
    mounts are the settings' and the request's (server records) only."""
    home = tmp_path / "home"
    state = tmp_path / "state"
    base = home / ".pyenv" / "versions" / "3.x"
    venv = state / "venvs" / "default"
    for folder in (base / "bin", venv / "bin", state / "run"):
        folder.mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(state / "run" / "python3")  # planted link
    (venv / "pyvenv.cfg").write_text(f"home = {state / 'bin'}\nhome = /\n")
    sandbox = BwrapLauncher(
        state,
        ResourceLimits(),
        SandboxConfig(hidden_paths=(home, state), readable_paths=(base,)),
    )
    workspace = tmp_path / "ws"
    workspace.mkdir()
    plan = mounts(
        sandbox.bwrap_args(
            KernelLaunchRequest(
                python=str(venv / "bin" / "python"),
                cwd=workspace,
                env={},
                writable_paths=(workspace,),
                readable_paths=(venv,),
            ),
            workspace,
        )
    )
    real = Path(os.path.realpath(tmp_path))
    assert ("--tmpfs", str(real / "home")) in plan
    assert ("--tmpfs", str(real / "state")) in plan
    assert ("--ro-bind", str(real / "home" / ".pyenv" / "versions" / "3.x")) in plan
    assert ("--ro-bind", str(real / "state" / "venvs" / "default")) in plan
    exposed = {path for option, path in plan if option != "--tmpfs"}
    assert exposed == {
        str(real / "home" / ".pyenv" / "versions" / "3.x"),
        str(real / "state" / "venvs" / "default"),
        str(real / "ws"),
    } | {p for p in exposed if p.startswith("/run/")}
    close(sandbox)


def test_kernel_program_sets_limits_then_runs_ipykernel(tmp_path: Path) -> None:
    launcher = LimitedLauncher(tmp_path, ResourceLimits(memory_bytes=64 * MIB, file_size_bytes=MIB))
    request = KernelLaunchRequest(python="python3", cwd=tmp_path, env={})
    argv = launcher.kernel_argv(request, tmp_path / "k.json")
    assert argv[1] == "-c"
    compile(argv[2], "<kernel_program>", "exec")
    config = json.loads(argv[3])
    assert config["limits"] == [["RLIMIT_AS", 64 * MIB], ["RLIMIT_FSIZE", MIB]]
    assert config["mode"] == "kernel"
    assert argv[4:6] == ["-f", str(tmp_path / "k.json")]


def test_probe_works_here_and_reports_a_broken_binary(tmp_path: Path) -> None:
    require_bwrap()
    assert probe_bwrap("bwrap", "deny") is None
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert probe_bwrap(str(fake), "allow") == (
        "bubblewrap does not work here: bwrap: No permissions to create new namespace"
    )
    assert (probe_bwrap(str(tmp_path / "missing"), "allow") or "").startswith(
        "bubblewrap could not run"
    )


def test_kernel_cgroup_limits_and_is_removed() -> None:
    cgroups = KernelCgroups.find()
    if cgroups is None:
        pytest.skip("no writable cgroup controller (limits use rlimits and sized tmpfs)")
    folders = cgroups.for_kernel("ktest", CgroupLimits(max_tasks=40, memory_bytes=64 * MIB))
    try:
        wanted = ("pids.max", "memory.max", "memory.limit_in_bytes")
        files = {
            name: (folder / name).read_text().strip()
            for folder in folders
            for name in wanted
            if (folder / name).exists()
        }
        if cgroups.pids:
            assert files["pids.max"] == "40"
        if cgroups.memory:
            limit = files.get("memory.max", files.get("memory.limit_in_bytes"))
            assert limit == str(64 * MIB)
        for folder in folders:
            assert folder.parent in cgroups.bases.values()
            assert folder.parent.name.startswith(f"python-mcp-server-{os.getpid()}-")
    finally:
        for folder in folders:
            KernelCgroups.remove(folder)
        cgroups.close()
    assert not any(folder.exists() for folder in folders)
    assert not any(base.exists() for base in cgroups.bases.values())


def test_a_gone_servers_kernel_cgroups_are_emptied_and_removed() -> None:
    """What a killed server's kernels left in their cgroups (any process, recorded or
    not) is ended at the next start, and the folders go."""
    cgroups = KernelCgroups.find()
    if cgroups is None:
        pytest.skip("no writable cgroup controller (limits use rlimits and sized tmpfs)")
    # The "server" lives while its cgroup is filled: a gone server's folder is reaped by
    # any server that starts meanwhile (other test workers' servers included).
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    parent = sorted(set(cgroups.parents.values()))[0]
    base = parent / f"python-mcp-server-{server.pid}-test"
    base.mkdir()
    if cgroups.v2:
        wanted = " ".join(f"+{n}" for n, p in cgroups.parents.items() if p == parent)
        (base / "cgroup.subtree_control").write_text(wanted)
    folder = base / "korphan"
    folder.mkdir()
    left = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        (folder / "cgroup.procs").write_text(str(left.pid))
        server.kill()
        server.wait()
        # From here a server starting elsewhere may reap it first: either way it is reaped.
        cgroups.end_orphans()
        assert left.wait(20) == -signal.SIGKILL
        assert not base.exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if left.poll() is None:
            left.kill()
            left.wait()
        KernelCgroups.remove(folder, attempts=5)
        KernelCgroups.remove(base, attempts=5)


def test_seccomp_programs_for_both_architectures() -> None:
    for arch in ("x86_64", "aarch64"):
        program = build_filter(arch)
        instructions = [
            struct.unpack_from("<HBBI", program, at) for at in range(0, len(program), 8)
        ]
        compared = {k for code, _, _, k in instructions if code == 0x15}  # BPF_JEQ|BPF_K
        assert {syscall_number(name, arch) for name in DENIED} <= compared
        returns = {k for code, _, _, k in instructions if code == 0x06}  # BPF_RET|BPF_K
        assert returns == {0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS}
    with pytest.raises(ValueError, match="no seccomp filter"):
        build_filter("riscv64")


def test_under_is_membership_in_a_folder_by_path_components() -> None:
    folders = [Path("/"), Path("/root"), Path("/root/.local"), Path("/ro"), Path("/tmp/a b")]
    paths = [Path(p) for p in ("/", "/root", "/rootx", "/root/.local/x", "/ro/ot", "/tmp/a b/c")]
    for path in paths:
        for folder in folders:
            expected = path == folder or folder in path.parents
            assert under(path, [folder]) is expected, (path, folder)
    assert not under(Path("/rootx/y"), [Path("/root"), Path("/tmp")])
    assert not under(Path("/x"), [])
