"""Environment tools through the MCP client: the default venv, lifecycle, sessions in venvs."""

from __future__ import annotations

import asyncio
import platform
import sys
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.core.packages.venv_records import LINK_FILE
from python_mcp_server.server.app import build_server
from python_mcp_server.server.services import build_services
from python_mcp_server.settings import Settings
from tests.helpers import call, kernel_children, run, tool_error, wait_gone
from tests.wheels import build_test_wheels


@pytest.fixture(scope="module")
def wheel_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def extra_settings() -> dict[str, Any]:
    """Parametrize this to change settings on top of the local-wheel ones."""
    return {}


@pytest.fixture
def settings_overrides(
    wheel_settings: dict[str, Any], extra_settings: dict[str, Any]
) -> dict[str, Any]:
    return {**wheel_settings, **extra_settings}


async def venvs(client: Client[Any]) -> dict[str, dict[str, Any]]:
    listing = await call(client, "list_venvs")
    assert listing["total"] == len(listing["venvs"])
    return {v["name"]: v for v in listing["venvs"]}


async def test_default_environment_runs_every_default_kernel(
    client: Client[Any], settings: Settings
) -> None:
    default_root = settings.venvs_path / "default"
    seen = await run(client, "import sys, ipykernel\n(sys.prefix, sys.executable, sys.path)")
    prefix, executable, path = eval(seen["result"])  # a tuple repr of plain values
    assert Path(prefix) == default_root
    assert Path(executable).parent == default_root / "bin"
    own = str(default_root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}")
    site_entries = [p for p in path if "site-packages" in p]
    # The environment's own site-packages comes before the server's.
    assert site_entries[0].startswith(own)
    assert any(p.startswith(sys.prefix) for p in site_entries[1:])
    listed = await venvs(client)
    default = listed["default"]
    assert default["is_default"] is True
    assert default["python_version"] == platform.python_version()
    assert default["sessions"] == ["default"]
    assert default["package_count"] == 0
    assert default["server_package_count"] > 10
    assert default["size_bytes"] > 0
    assert default["created_at"] is not None
    assert default["preinstall"] is None  # state "none": nothing to say, so not sent


async def test_venv_lifecycle(client: Client[Any], settings: Settings) -> None:
    created = await call(client, "create_venv", venv_name="ds", description="data science")
    assert created["action"] == "created"
    assert created["duration_seconds"] > 0
    assert created["venv"]["description"] == "data science"
    root = settings.venvs_path / "ds"
    assert (root / "mcp-venv.json").is_file()
    assert list(root.glob(f"lib/python*/site-packages/{LINK_FILE}"))
    described = await call(client, "set_venv_description", venv_name="ds", description="numbers")
    assert described["venv"]["description"] == "numbers"

    session = await call(client, "create_session", session_id="s1", venv_name="ds")
    assert session["session"]["venv_name"] == "ds"
    prefix = await run(client, "import sys\nsys.prefix", session_id="s1")
    assert Path(eval(prefix["result"])) == root
    listed = await venvs(client)
    assert listed["ds"]["sessions"] == ["s1"]
    assert listed["ds"]["description"] == "numbers"
    assert listed["ds"]["preinstall"] is None

    text = await tool_error(client, "delete_venv", {"venv_name": "ds"})
    assert text.startswith("VENV_IN_USE:")
    assert "s1" in text
    await client.call_tool("delete_session", {"session_id": "s1"})
    deleted = await call(client, "delete_venv", venv_name="ds")
    assert deleted["action"] == "deleted"
    assert not root.exists()
    assert "ds" not in await venvs(client)
    text = await tool_error(client, "create_session", {"session_id": "s2", "venv_name": "ds"})
    assert text.startswith("VENV_NOT_FOUND:")
    for tool, arguments in (
        ("delete_venv", {"venv_name": "ds"}),
        ("set_venv_description", {"venv_name": "ds", "description": "x"}),
    ):
        assert (await tool_error(client, tool, arguments)).startswith("VENV_NOT_FOUND:")


async def test_names_and_duplicates(client: Client[Any], settings: Settings) -> None:
    for bad in ("../escape", "a/b", "", ".hidden", "-x", "x" * 65, "sp ace"):
        text = await tool_error(client, "create_venv", {"venv_name": bad})
        assert text.startswith("INVALID_INPUT:"), bad
    assert not (settings.venvs_path.parent / "escape").exists()
    await call(client, "create_venv", venv_name="web")
    assert (await tool_error(client, "create_venv", {"venv_name": "web"})).startswith(
        "VENV_EXISTS:"
    )
    assert (await tool_error(client, "create_venv", {"venv_name": "default"})).startswith(
        "VENV_EXISTS:"
    )


async def test_create_with_packages_and_environments_stay_apart(client: Client[Any]) -> None:
    one = await call(client, "create_venv", venv_name="one", packages="pmcp-tiny==1.0")
    assert one["install"]["packages"][0]["status"] == "installed"
    await call(client, "create_venv", venv_name="two", packages=["pmcp-tiny==2.0"])
    await call(client, "create_session", session_id="a", venv_name="one")
    await call(client, "create_session", session_id="b", venv_name="two")
    code = "import pmcp_tiny\npmcp_tiny.VERSION"
    assert (await run(client, code, session_id="a"))["result"] == "'1.0'"
    assert (await run(client, code, session_id="b"))["result"] == "'2.0'"
    assert (await run(client, code))["error"]["ename"] == "ModuleNotFoundError"
    assert (await venvs(client))["one"]["package_count"] == 1


async def test_failed_create_leaves_nothing(client: Client[Any], settings: Settings) -> None:
    text = await tool_error(
        client, "create_venv", {"venv_name": "broken", "packages": "pmcp-no-such-package"}
    )
    assert text.startswith("PACKAGE_INSTALLATION_ERROR:")
    assert "pmcp-no-such-package" in text
    assert not (settings.venvs_path / "broken").exists()
    assert "broken" not in await venvs(client)
    text = await tool_error(client, "create_venv", {"venv_name": "bad", "packages": "-e ."})
    assert text.startswith("INVALID_INPUT:")
    assert not (settings.venvs_path / "bad").exists()


@pytest.mark.parametrize("extra_settings", [{"kernel_pool_size": 0}])
async def test_default_environment_needs_confirmation_and_is_reset(
    client: Client[Any], settings: Settings
) -> None:
    await call(client, "install_dependencies", packages="pmcp-tiny==1.0")
    text = await tool_error(client, "delete_venv", {"venv_name": "default"})
    assert text.startswith("CONFIRMATION_REQUIRED:")
    await run(client, "1")
    text = await tool_error(client, "delete_venv", {"venv_name": "default", "confirm": True})
    assert text.startswith("VENV_IN_USE:")
    await client.call_tool("delete_session", {"session_id": "default"})
    reset = await call(client, "delete_venv", venv_name="default", confirm=True)
    assert reset["action"] == "reset"
    assert (await venvs(client))["default"]["package_count"] == 0
    assert (await run(client, "import pmcp_tiny"))["error"]["ename"] == "ModuleNotFoundError"
    assert (await run(client, "import ipykernel; 1"))["status"] == "ok"


@pytest.mark.parametrize("extra_settings", [{"default_venv_name": "base"}])
async def test_default_environment_name_comes_from_settings(
    client: Client[Any], settings: Settings
) -> None:
    await run(client, "1")
    assert set(await venvs(client)) == {"base"}
    session = await call(client, "create_session", session_id="explicit", venv_name="base")
    assert session["session"]["venv_name"] is None
    assert (settings.venvs_path / "base" / "bin" / "python").exists()


async def test_preinstalled_packages_install_in_the_background(
    settings_overrides: dict[str, Any], workspace: Path
) -> None:
    settings = Settings(
        workspace_dir=workspace,
        kernel_pool_size=0,
        session_idle_timeout=0,
        preinstalled_packages="pmcp-tiny==1.0 pmcp-other",
        **settings_overrides,
    )
    services = build_services(settings)
    lock = services.environments.installer.lock_for(settings.default_venv_name)
    try:
        # Readiness does not wait for the preinstall, even when it cannot proceed yet.
        await services.database.open()  # installs are audited into it, as at a real start
        await services.environments.start()
        await lock.acquire()
        assert services.environments.preinstall.state == "pending"
        await services.sessions.start()
        infos = await services.environments.list_all()
        assert infos[0].preinstall is not None
        assert infos[0].preinstall.packages == ["pmcp-tiny==1.0", "pmcp-other"]
        lock.release()
        status = await asyncio.wait_for(services.environments.wait_preinstalled(), 60)
        assert status.state == "done", status.error
        assert status.result is not None
        assert [p.status for p in status.result.packages] == ["installed", "installed"]
        assert status.duration_seconds is not None
    finally:
        if lock.locked():
            lock.release()
        await services.aclose()


async def test_preinstall_progress_in_list_venvs(
    wheel_settings: dict[str, Any], workspace: Path
) -> None:
    settings = Settings(
        workspace_dir=workspace,
        kernel_pool_size=0,
        session_idle_timeout=0,
        preinstalled_packages="pmcp-tiny==1.0",
        toolsets="default,environments",
        **wheel_settings,
    )
    before = kernel_children()
    async with Client(build_server(settings)) as client:
        states = []
        while not states or states[-1] not in ("done", "failed"):
            preinstall = (await venvs(client))["default"]["preinstall"]
            states.append(preinstall["state"])
            await asyncio.sleep(0.05)
        assert set(states) <= {"pending", "running", "done"}
        assert preinstall["packages"] == ["pmcp-tiny==1.0"]
        assert preinstall["result"]["packages"][0]["version"] == "1.0"
        assert preinstall["finished_at"] is not None
        imported = await run(client, "import pmcp_tiny\npmcp_tiny.VERSION")
        assert imported["result"] == "'1.0'"
    assert not wait_gone(kernel_children() - before)


async def test_invalid_preinstall_setting_is_reported(workspace: Path) -> None:
    settings = Settings(
        workspace_dir=workspace, kernel_pool_size=0, preinstalled_packages="-r evil.txt"
    )
    services = build_services(settings)
    try:
        await services.start()
        status = services.environments.preinstall
        assert status.state == "failed"
        assert status.error is not None
        assert "options are not accepted" in status.error
    finally:
        await services.aclose()


async def test_default_environment_is_reused_across_starts(workspace: Path) -> None:
    settings = Settings(workspace_dir=workspace, kernel_pool_size=0)
    first = build_services(settings)
    await first.start()
    await first.aclose()
    assert first.environments.default_created_seconds is not None
    marker = settings.venvs_path / "default" / "kept"
    marker.write_text("x")
    second = build_services(settings)
    await second.start()
    await second.aclose()
    assert second.environments.default_created_seconds is None
    assert marker.exists()
