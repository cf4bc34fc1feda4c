"""The real command refuses to start on a task store it cannot use: Redis unreachable, or
MCP_REDIS_URL and MCP_TASKS_URL naming two stores. One line says why, without the
password of the URL; the exit status is not zero."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.e2e.conftest import COMMAND
from tests.helpers import free_port

PASSWORD = "s3cret-in-the-url"


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MCP_")},
        "MCP_AUTH_TOKEN": "task-store-start-token-0123",
        **env,
    }
    return subprocess.run(
        [
            COMMAND,
            *("--port", str(free_port())),
            *("--workspace-dir", str(tmp_path / "workspace")),
            *("--state-dir", str(tmp_path / "state")),
            *("--gateway-url", f"http://127.0.0.1:{free_port()}"),
            *("--log-level", "WARNING"),
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert PASSWORD not in done.stdout + done.stderr
    return [line for line in done.stderr.splitlines() if line.startswith("python-mcp-server: ")]


def test_unreachable_redis_at_start_exits_with_one_line_naming_it(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    done = start(tmp_path, MCP_REDIS_URL=url)
    assert done.returncode != 0
    lines = error_lines(done)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("python-mcp-server: TASK_STORE_UNAVAILABLE: "), lines
    assert f"redis://:***@127.0.0.1:{port}/0" in lines[0]
    assert "Traceback" not in done.stderr


def test_two_different_task_stores_are_refused(tmp_path: Path) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    done = start(tmp_path, MCP_REDIS_URL=url, MCP_TASKS_URL="memory://")
    assert done.returncode != 0
    lines = error_lines(done)
    assert len(lines) == 1, done.stderr
    assert "MCP_TASKS_URL and MCP_REDIS_URL name different task stores" in lines[0]
