"""A kernel that stays silent at start is replaced once, within the start timeout."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from python_mcp_server.core.sessions.kernel_factory import KernelFactory, KernelFactoryConfig
from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.local import LocalLauncher
from tests.helpers import wait_gone


def stalling_python(folder: Path, *, stalls: int) -> str:
    """An interpreter whose first ``stalls`` runs hang silently; later runs are Python."""
    counter = folder / "runs"
    script = folder / "python"
    script.write_text(
        "#!/bin/sh\n"
        f'echo x >> "{counter}"\n'
        f'if [ "$(wc -l < "{counter}")" -le {stalls} ]; then\n'
        "  echo 'stalled at start-up' >&2\n"
        "  exec sleep 120\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def sleepers() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.name() == "sleep"}


async def test_a_silent_kernel_is_replaced_by_one_that_answers(
    workspace: Path, tmp_path: Path, no_kernel_leak: None
) -> None:
    python = stalling_python(tmp_path, stalls=1)
    launcher = LocalLauncher(workspace / ".state")
    factory = KernelFactory(
        launcher, KernelFactoryConfig(workspace, start_timeout=12), lambda _venv: python
    )
    try:
        client = await factory.start(None, "retry")
        try:
            reply = await client.request("kernel_info_request", {}, timeout=10)
            assert reply["content"]["status"] == "ok"
            assert (tmp_path / "runs").read_text().count("x") == 2
            assert not wait_gone(sleepers())  # the silent one was ended
        finally:
            await client.close(kill=True)
    finally:
        await launcher.aclose()


async def test_a_kernel_silent_twice_fails_with_its_output(workspace: Path, tmp_path: Path) -> None:
    python = stalling_python(tmp_path, stalls=2)
    launcher = LocalLauncher(workspace / ".state")
    factory = KernelFactory(
        launcher, KernelFactoryConfig(workspace, start_timeout=3), lambda _venv: python
    )
    try:
        with pytest.raises(KernelStartError, match="stalled at start-up"):
            await factory.start(None, "retry")
        assert (tmp_path / "runs").read_text().count("x") == 2
        assert not wait_gone(sleepers())
    finally:
        await launcher.aclose()
