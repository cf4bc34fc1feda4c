"""The local launcher never leaves a kernel behind: not at close, not on a cancelled spawn."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.core.sessions.kernel_environment import kernel_environment
from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.base import KernelLaunchRequest
from python_mcp_server.infra.kernels.local import LocalLauncher
from tests.helpers import kernel_children, wait_gone


def request(workspace: Path) -> KernelLaunchRequest:
    return KernelLaunchRequest(
        python=sys.executable, cwd=workspace, env=kernel_environment(workspace), label="t"
    )


async def test_close_ends_kernels_nobody_closed(workspace: Path) -> None:
    launcher = LocalLauncher(workspace / ".state")
    kernel = await launcher.launch(request(workspace))
    assert kernel.pid is not None
    assert kernel.is_alive()
    await launcher.aclose()
    assert not wait_gone({kernel.pid})
    assert not list((workspace / ".state" / "kernels").iterdir())


async def test_a_cancelled_launch_leaves_no_process(workspace: Path) -> None:
    launcher = LocalLauncher(workspace / ".state")
    before = kernel_children()
    try:
        for _ in range(5):
            task = asyncio.ensure_future(launcher.launch(request(workspace)))
            await asyncio.sleep(0)  # let the spawn begin, then cancel it mid-way
            task.cancel()
            try:
                kernel = await task
            except asyncio.CancelledError:
                continue
            await kernel.kill()  # the spawn finished before the cancel arrived
        assert not wait_gone(kernel_children() - before)
        assert not list((workspace / ".state" / "kernels").glob("*.pending"))
    finally:
        await launcher.aclose()


async def test_a_cancelled_kill_still_ends_the_kernel_and_passes_the_cancel_on(
    workspace: Path,
) -> None:
    # A task cancelled while it waits for a kernel to be reaped must end as cancelled
    # (swallowing it once made the idle reaper loop forever at shutdown), and the kernel
    # must still go.
    launcher = LocalLauncher(workspace / ".state")
    try:
        kernel = await launcher.launch(request(workspace))
        assert kernel.pid is not None
        task = asyncio.ensure_future(kernel.kill())
        await asyncio.sleep(0)  # the kill signal is out; the task now waits for the exit
        task.cancel()
        await asyncio.wait([task])
        assert task.cancelled()
        assert not wait_gone({kernel.pid})
        exit_info = await kernel.wait_exit()
        assert exit_info.returncode is not None
    finally:
        await launcher.aclose()


async def test_a_kernel_that_never_answers_fails_with_its_last_output(workspace: Path) -> None:
    # An interpreter that hangs at start-up (a stuck import, say) stands in for python.
    stuck = workspace / "stuck-python"
    stuck.write_text("#!/bin/sh\necho 'importing the world, slowly' >&2\nexec sleep 60\n")
    stuck.chmod(0o755)
    launcher = LocalLauncher(workspace / ".state")
    try:
        kernel = await launcher.launch(
            KernelLaunchRequest(
                python=str(stuck), cwd=workspace, env=kernel_environment(workspace), label="t"
            )
        )
        assert kernel.pid is not None
        with pytest.raises(KernelStartError) as failure:
            await KernelClient.connect(kernel, timeout=1.5)
        assert "did not answer within 1.5 s" in failure.value.message
        assert "importing the world, slowly" in failure.value.message
        assert not wait_gone({kernel.pid})  # a kernel that failed to start is ended
    finally:
        await launcher.aclose()
