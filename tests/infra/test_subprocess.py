"""The command runner: output and exit code, timeouts that end the whole process group."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from python_mcp_server.errors import ServerError
from python_mcp_server.infra.subprocess import (
    CommandStartError,
    CommandTimeoutError,
    run_command,
)
from tests.helpers import wait_gone


async def test_returns_output_and_exit_code(tmp_path: Path) -> None:
    code = "import os, sys; print('out', os.getcwd()); print('err', file=sys.stderr); sys.exit(3)"
    result = await run_command([sys.executable, "-c", code], timeout=30, cwd=tmp_path)
    assert result.returncode == 3
    assert not result.ok
    assert result.stdout == f"out {tmp_path}\n"
    assert result.stderr == "err\n"
    assert result.duration > 0


async def test_environment_is_exactly_what_is_given() -> None:
    code = "import os; print(sorted(k for k in os.environ if k.startswith('PMCP_')))"
    result = await run_command(
        [sys.executable, "-c", code], timeout=30, env={"PMCP_ONLY": "1", "PATH": "/usr/bin"}
    )
    assert result.stdout.strip() == "['PMCP_ONLY']"


async def test_timeout_ends_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # The command starts a grandchild that would outlive a plain kill of the leader.
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(CommandTimeoutError) as raised:
        await run_command([sys.executable, "-c", code], timeout=1.5)
    assert raised.value.timeout == 1.5
    assert "did not finish within 1.5 s" in raised.value.message
    grandchild = int(pid_file.read_text())
    assert not wait_gone({grandchild})
    assert not [p for p in psutil.Process().children(recursive=True) if p.pid == grandchild]


async def test_missing_program_is_a_project_error() -> None:
    with pytest.raises(CommandStartError) as raised:
        await run_command(["/nonexistent/pmcp-tool", "x"], timeout=5)
    assert isinstance(raised.value, ServerError)
    assert "could not start pmcp-tool" in raised.value.message
