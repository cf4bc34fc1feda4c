"""The command line: --help and --version answer at once and start nothing; flags beat
environment variables, which beat defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from python_mcp_server import __version__
from python_mcp_server.cli import build_parser, settings_overrides
from python_mcp_server.settings import Settings

COMMAND = str(Path(sys.executable).parent / "python-mcp-server")


@pytest.mark.parametrize(
    "argv",
    [
        [COMMAND, "--version"],
        [COMMAND, "--help"],
        [sys.executable, "-m", "python_mcp_server", "--version"],
    ],
    ids=["version", "help", "module-version"],
)
def test_help_and_version_start_nothing(tmp_path: Path, argv: list[str]) -> None:
    done = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    if "--version" in argv:
        assert done.stdout.strip() == f"python-mcp-server {__version__}"
    else:
        assert "--workspace-dir" in done.stdout
        assert "--transport" in done.stdout
    # Nothing was set up: no workspace, no state, no kernel.
    assert list(tmp_path.iterdir()) == []


def test_flag_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().port == 8000
    monkeypatch.setenv("MCP_PORT", "9001")
    assert Settings().port == 9001
    args = build_parser().parse_args(["--port", "9002"])
    assert Settings(**settings_overrides(args)).port == 9002


def test_invalid_setting_exits_with_a_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [COMMAND, "--port", "8000"],
        cwd=tmp_path,
        env={"MCP_MAX_SESSIONS": "zero", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "max_sessions" in done.stderr
    assert "Traceback" not in done.stderr
