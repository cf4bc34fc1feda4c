"""Kernels forked from a preloaded template: separate processes that share nothing but pages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil

from python_mcp_server.core.execution.private_eval import run_probe
from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_environment import kernel_environment
from python_mcp_server.infra.kernels.base import KernelLaunchRequest, Message
from python_mcp_server.infra.kernels.limits import MIB, ResourceLimits
from python_mcp_server.infra.kernels.template import ForkedKernel
from python_mcp_server.infra.kernels.template_launcher import TemplateLauncher
from tests.helpers import kernel_children, wait_gone

PRELOAD = ("numpy",)


def request(
    workspace: Path, preload: tuple[str, ...] = PRELOAD, extra_args: tuple[str, ...] = ()
) -> KernelLaunchRequest:
    return KernelLaunchRequest(
        python=sys.executable,
        cwd=workspace,
        env=kernel_environment(workspace),
        label="t",
        preload=preload,
        extra_args=extra_args,
    )


async def execute(client: KernelClient, code: str) -> str:
    """Run code; return what it printed (a failure fails the test)."""
    printed: list[str] = []

    def collect(message: Message) -> None:
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    execution = client.start_execute(code, on_iopub=collect, on_stdin=None)
    reply = await execution.wait(60)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(printed)


async def start(
    launcher: TemplateLauncher, workspace: Path, extra_args: tuple[str, ...] = ()
) -> KernelClient:
    kernel = await launcher.launch(request(workspace, extra_args=extra_args))
    assert isinstance(kernel, ForkedKernel)
    return await KernelClient.connect(kernel, timeout=120)


STATE = (
    "import json, os, random, uuid, sys, numpy\n"
    "print(json.dumps({'random': random.random(), 'numpy': float(numpy.random.random()),"
    " 'urandom': os.urandom(8).hex(), 'uuid': str(uuid.uuid4()), 'pgid': os.getpgid(0),"
    " 'sid': os.getsid(0), 'ppid': os.getppid(), 'preloaded': 'numpy' in sys.modules}))"
)


def descriptors(pid: int) -> set[str]:
    """What a process's file descriptors point at (sockets and pipes by inode)."""
    found = set()
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.add(os.readlink(entry))
        except OSError:
            continue
    return found


async def test_forked_kernels_are_separate_and_share_no_state(
    launcher: TemplateLauncher, workspace: Path
) -> None:
    first = await start(launcher, workspace)
    second = await start(launcher, workspace)
    try:
        (template,) = launcher.templates
        pids = [first.kernel.pid, second.kernel.pid]
        assert None not in pids
        assert pids[0] != pids[1]
        states = [json.loads(await execute(c, STATE)) for c in (first, second)]
        for pid, state in zip(pids, states, strict=True):
            assert state["preloaded"]  # imported by the template, before any call
            assert state["pgid"] == state["sid"] == pid  # its own session and group
            assert state["ppid"] == template.pid
        for key in ("random", "numpy", "urandom", "uuid"):
            assert states[0][key] != states[1][key], key
        fds = [descriptors(pid) for pid in pids if pid is not None]
        # sockets and pipes carry their inode (anonymous inodes all read alike)
        shared = {fd for fd in fds[0] & fds[1] if fd.startswith(("socket:", "pipe:"))}
        assert not shared
        template_fds = {
            fd for fd in descriptors(template.pid) if fd.startswith(("socket:", "pipe:"))
        }
        assert not template_fds & (fds[0] | fds[1])
    finally:
        await first.close(kill=True)
        await second.close(kill=True)


async def test_a_crashing_kernel_touches_no_other(
    launcher: TemplateLauncher, workspace: Path
) -> None:
    first = await start(launcher, workspace)
    second = await start(launcher, workspace)
    try:
        assert first.kernel.pid is not None
        os.kill(first.kernel.pid, signal.SIGSEGV)
        ended = await asyncio.wait_for(first.kernel.wait_exit(), 30)
        assert ended.returncode == -signal.SIGSEGV
        assert "segmentation fault" in ended.reason
        assert "ok" in await execute(second, "print('ok')")
        third = await start(launcher, workspace)  # the template still forks
        assert "3" in await execute(third, "print(1 + 2)")
        await third.close(kill=True)
    finally:
        await first.close(kill=True)
        await second.close(kill=True)


async def test_a_forked_idle_kernel_costs_little_unique_memory(
    launcher: TemplateLauncher, workspace: Path
) -> None:
    client = await start(launcher, workspace)
    try:
        await execute(client, "x = 1")
        assert client.kernel.pid is not None
        uss = psutil.Process(client.kernel.pid).memory_full_info().uss
        # About 14 MiB (template_program.py: what the template does so that kernels copy
        # little of it); a plain kernel with numpy holds about 60 MiB.
        assert uss < 20 * MIB, uss / MIB
    finally:
        await client.close(kill=True)


SETUP = (
    "import gc, json, sys, numpy, ipykernel.ipkernel\n"
    "from ipykernel.kernelapp import IPKernelApp\n"
    "kernel = get_ipython().kernel\n"
    "print(json.dumps({'marker': marker, 'connection_file': IPKernelApp.instance().connection_file,"
    " 'module_files': kernel.debugger.kernel_modules, 'numpy': numpy.__file__,"
    " 'sys_restored': ipykernel.ipkernel.sys is sys,"
    " 'gc': gc.isenabled(), 'frozen': gc.get_freeze_count()}))"
)


async def test_a_forked_kernel_is_set_up_as_a_started_one(
    launcher: TemplateLauncher, workspace: Path
) -> None:
    """The template parsed the arguments and listed the modules once; each kernel still
    gets its own connection file, runs its start-up lines and collects its own garbage."""
    args = ("--IPKernelApp.exec_lines=marker = 'start-up line ran'",)
    first = await start(launcher, workspace, args)
    second = await start(launcher, workspace, args)
    try:
        seen = [json.loads(await execute(c, SETUP)) for c in (first, second)]
        for client, setup in zip((first, second), seen, strict=True):
            assert setup["marker"] == "start-up line ran"
            own = json.loads(await asyncio.to_thread(Path(setup["connection_file"]).read_text))
            key = client.kernel.connection_info["key"]
            assert own["key"] == (key.decode() if isinstance(key, bytes) else key)
            assert setup["numpy"] in setup["module_files"]  # the debugger's list is whole
            assert setup["sys_restored"]
            assert setup["gc"]  # the template never collects; its kernels do
            assert setup["frozen"] > 0
        assert seen[0]["connection_file"] != seen[1]["connection_file"]
    finally:
        await first.close(kill=True)
        await second.close(kill=True)


async def test_a_dead_template_is_replaced(launcher: TemplateLauncher, workspace: Path) -> None:
    client = await start(launcher, workspace)
    (template,) = launcher.templates
    template.process.kill()
    await template.process.wait()
    assert "alive" in await execute(client, "print('alive')")  # its kernels live on
    again = await start(launcher, workspace)
    try:
        (replacement,) = launcher.templates
        assert replacement.pid != template.pid
        assert "2" in await execute(again, "print(1 + 1)")
    finally:
        await again.close(kill=True)
        await client.close(kill=True)


async def test_a_failing_preload_module_is_reported_and_the_kernel_starts(
    launcher: TemplateLauncher, workspace: Path
) -> None:
    kernel = await launcher.launch(request(workspace, ("numpy", "no_such_module_pmcp")))
    client = await KernelClient.connect(kernel, timeout=120)
    try:
        failures = kernel.preload_failures()
        assert list(failures) == ["no_such_module_pmcp"]
        assert "ModuleNotFoundError" in failures["no_such_module_pmcp"]
        assert "numpy" in await execute(client, "import sys; print(sorted(sys.modules))")
        assert launcher.templates == []  # callers start plain kernels from now on
    finally:
        await client.close(kill=True)


async def test_a_kernel_no_template_served_says_why(workspace: Path) -> None:
    """A template too slow to be ready in time (a real one, given 50 ms): the kernel starts
    whole, and says so (the pool keeps its shallow depth for such kernels)."""
    before = kernel_children()
    launcher = TemplateLauncher(
        workspace / ".state", ResourceLimits(memory_bytes=1024 * MIB), start_timeout=0.05
    )
    try:
        kernel = await launcher.launch(request(workspace))
        assert not isinstance(kernel, ForkedKernel)
        assert kernel.unforked is not None
        assert kernel.unforked.startswith("no fork template can serve (")
        client = await KernelClient.connect(kernel, timeout=120)
        try:
            assert "numpy" in await execute(client, "import sys; print(sorted(sys.modules))")
        finally:
            await client.close(kill=True)
    finally:
        await launcher.aclose()
    assert not wait_gone(kernel_children() - before)


async def test_private_probe_sees_the_preloaded_module(
    launcher: TemplateLauncher, workspace: Path
) -> None:
    client = await start(launcher, workspace)
    try:
        answer: dict[str, Any] = await run_probe(
            client, "list_variables", {"limit": 100}, timeout=30
        )
        assert "numpy" not in json.dumps(answer)  # preloaded, yet not in the user's namespace
    finally:
        await client.close(kill=True)
