"""Without uv: environments made by ``python -m venv`` and packages installed by pip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from python_mcp_server.core.packages.environments import EnvironmentManager, EnvironmentsConfig
from python_mcp_server.core.packages.installer import (
    Installer,
    InstallerConfig,
    split_setting,
)
from python_mcp_server.core.packages.installer_env import INSTALLER_ENV_ALLOWED
from python_mcp_server.core.packages.requirements import parse_names, parse_packages
from python_mcp_server.core.packages.venv_records import server_site_dirs
from python_mcp_server.errors import PackageInstallationError
from python_mcp_server.infra.sandboxed_run import RunnerConfig, SandboxedRunner
from python_mcp_server.infra.subprocess import run_command
from tests.wheels import build_test_wheels


@pytest.fixture
def manager(tmp_path: Path) -> EnvironmentManager:
    wheels = build_test_wheels(tmp_path)
    installer = Installer(
        InstallerConfig(
            timeout=120,
            index_url=wheels["pip_index_url"],
            find_links=split_setting(wheels["pip_find_links"]),
            uv=None,
        ),
        SandboxedRunner(RunnerConfig(bwrap=None, passed_variables=INSTALLER_ENV_ALLOWED)),
    )
    config = EnvironmentsConfig(
        venvs_path=tmp_path / "venvs",
        default_name="default",
        base_python=sys.executable,
        server_dirs=server_site_dirs(),
        uv=None,
    )
    return EnvironmentManager(config, installer)


async def test_pip_fallback_installs_into_the_venv_only(manager: EnvironmentManager) -> None:
    await manager.start()
    await manager.create("plain", packages=parse_packages("pmcp-tiny==1.0"))
    target = manager.target("plain")
    assert (target.site_packages / "pmcp_tiny" / "__init__.py").is_file()
    result = await manager.installer.install(
        target, parse_packages("pmcp-uses-tiny pmcp-tiny==2.0")
    )
    assert result.installer == "pip"
    assert [(p.name, p.status, p.version) for p in result.packages] == [
        ("pmcp-uses-tiny", "installed", "1.0"),
        ("pmcp-tiny", "updated", "2.0"),
    ]
    probe = "import pmcp_tiny, ipykernel, sys; print(pmcp_tiny.VERSION, sys.prefix)"
    ran = await run_command([manager.python_for("plain"), "-c", probe], timeout=60)
    assert ran.stdout.split() == ["2.0", str(manager.root("plain"))]
    removed = await manager.installer.uninstall(target, parse_names("pmcp-tiny ipykernel"))
    assert [(o.name, o.status) for o in removed.packages] == [
        ("pmcp-tiny", "removed"),
        ("ipykernel", "provided_by_server"),
    ]
    with pytest.raises(PackageInstallationError, match="pmcp-missing"):
        await manager.installer.install(target, parse_packages("pmcp-missing"))
