"""Reading what a target holds: in the runner, headers only, planted files do not hang it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from python_mcp_server.core.packages.installer import (
    EnvTarget,
    Installer,
    InstallerConfig,
)
from python_mcp_server.core.packages.installer_env import INSTALLER_ENV_ALLOWED
from python_mcp_server.infra.sandboxed_run import RunnerConfig, SandboxedRunner


async def test_scan_reads_headers_and_skips_what_a_kernel_planted(tmp_path: Path) -> None:
    own, shared = tmp_path / "session", tmp_path / "env"
    for folder in (own, shared):
        folder.mkdir()
    good = own / "Pmcp_Tiny-1.0.dist-info"
    good.mkdir()
    long_text = "Name: pmcp-tiny\nVersion: 1.0\n\n" + "description\n" * 200_000
    (good / "METADATA").write_text(long_text)
    fifo = own / "stuck-1.0.dist-info"
    fifo.mkdir()
    os.mkfifo(fifo / "METADATA")  # opening it for reading would wait for a writer
    (own / "dev-1.0.dist-info").mkdir()
    (own / "dev-1.0.dist-info" / "METADATA").symlink_to("/dev/zero")
    (shared / "other-2.0.egg-info").write_text("Metadata-Version: 1.1\nName: Other\nVersion: 2.0\n")
    installer = Installer(
        InstallerConfig(timeout=60),
        SandboxedRunner(RunnerConfig(bwrap=None, passed_variables=INSTALLER_ENV_ALLOWED)),
    )
    target = EnvTarget(
        name="t",
        root=tmp_path,
        python=Path(sys.executable),
        site_packages=shared,
        session_id="s",
        session_site=own,
    )
    found, below = await installer.scan(target)
    assert found == {"pmcp-tiny": ("pmcp-tiny", "1.0")}
    assert below == [({"other": ("Other", "2.0")}, "environment")]
    listed, count = await installer.packages(target)
    assert count == 1
    assert [(p.name, p.location) for p in listed] == [
        ("Other", "environment"),
        ("pmcp-tiny", "session"),
    ]
