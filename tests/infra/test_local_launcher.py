"""The local launcher never leaves a kernel behind: not at close, not on a cancelled spawn."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from python_mcp_server.core.kernel_environment import kernel_environment
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
