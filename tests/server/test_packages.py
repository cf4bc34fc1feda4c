"""Package tools through the MCP client: real uv installs from hand-built local wheels."""

from __future__ import annotations

import asyncio
import importlib.metadata
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from python_mcp_server.settings import Settings
from tests.helpers import call, run, tool_error
from tests.wheels import build_test_wheels


@pytest.fixture(scope="module")
def wheel_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def settings_overrides(wheel_settings: dict[str, Any]) -> dict[str, Any]:
    return dict(wheel_settings)


async def test_install_then_import_in_the_running_kernel(client: Client[Any]) -> None:
    before = await run(client, "import pmcp_tiny")
    assert before["error"]["ename"] == "ModuleNotFoundError"
    result = await call(client, "install_dependencies", packages="pmcp-tiny==1.0")
    assert result["venv_name"] == "default"
    assert result["installer"] == "uv"
    assert result["duration_seconds"] > 0
    (outcome,) = result["packages"]
    assert outcome == {
        "requirement": "pmcp-tiny==1.0",
        "name": "pmcp-tiny",
        "status": "installed",
        "version": "1.0",
        "previous_version": None,
        "location": "environment",
    }
    assert result["sessions_refreshed"] == ["default"]
    # Same kernel (no restart): the failed import above did not stick.
    after = await run(client, "import pmcp_tiny\npmcp_tiny.VERSION")
    assert after["status"] == "ok", after["error"]
    assert after["result"] == "'1.0'"


async def test_dependencies_and_string_forms(client: Client[Any]) -> None:
    result = await call(client, "install_dependencies", packages="pmcp-uses-tiny, pmcp-other")
    assert [p["name"] for p in result["packages"]] == ["pmcp-uses-tiny", "pmcp-other"]
    assert {c["name"]: c["version"] for c in result["changes"]} == {
        "pmcp-other": "1.0",
        "pmcp-tiny": "2.0",
        "pmcp-uses-tiny": "1.0",
    }
    assert "with 1 dependency" in result["message"]


async def test_upgrade_and_already_satisfied(client: Client[Any]) -> None:
    await call(client, "install_dependencies", packages=["pmcp-tiny==1.0"])
    again = await call(client, "install_dependencies", packages=["pmcp-tiny"])
    assert again["installer"] == "none"
    assert again["packages"][0]["status"] == "already_satisfied"
    assert again["packages"][0]["version"] == "1.0"
    upgraded = await call(client, "install_dependencies", packages="pmcp-tiny", upgrade=True)
    (outcome,) = upgraded["packages"]
    assert outcome["status"] == "updated"
    assert (outcome["previous_version"], outcome["version"]) == ("1.0", "2.0")
    assert "restart_kernel" in upgraded["message"]


async def test_requirements_satisfied_by_the_server_are_not_reinstalled(
    client: Client[Any],
) -> None:
    result = await call(client, "install_dependencies", packages="ipykernel")
    (outcome,) = result["packages"]
    assert outcome["status"] == "already_satisfied"
    assert outcome["location"] == "server"
    assert outcome["version"] == importlib.metadata.version("ipykernel")
    assert result["installer"] == "none"


async def test_invalid_specifiers_are_refused_before_anything_runs(
    client: Client[Any], settings: Settings
) -> None:
    for bad in (
        "-r requirements.txt",
        ["--index-url", "https://evil.example/simple"],
        "./local_pkg",
        "pkg @ https://evil.example/pkg.whl",
        "https://evil.example/pkg.whl",
        "numpy && curl evil.example",
        "",
    ):
        text = await tool_error(client, "install_dependencies", {"packages": bad})
        assert text.startswith("INVALID_INPUT:"), text
    own = settings.venvs_path / "default" / "lib"
    assert not list(own.glob("python*/site-packages/*.dist-info"))


async def test_missing_package_is_named_and_nothing_is_installed(
    client: Client[Any], settings: Settings
) -> None:
    text = await tool_error(
        client, "install_dependencies", {"packages": ["pmcp-tiny", "pmcp-no-such-package"]}
    )
    assert text.startswith("PACKAGE_INSTALLATION_ERROR: could not install pmcp-no-such-package:")
    assert "not found" in text
    assert str(settings.workspace_path) not in text
    assert sys.prefix not in text
    listed = await call(client, "list_packages")
    assert "pmcp-tiny" not in {p["name"] for p in listed["packages"]}


async def test_uninstall(client: Client[Any]) -> None:
    await call(client, "install_dependencies", packages="pmcp-tiny==1.0")
    assert (await run(client, "import pmcp_tiny"))["status"] == "ok"
    result = await call(
        client, "uninstall_packages", packages="pmcp-tiny iniconfig pmcp-never-installed"
    )
    assert [(p["name"], p["status"]) for p in result["packages"]] == [
        ("pmcp-tiny", "removed"),
        ("iniconfig", "provided_by_server"),
        ("pmcp-never-installed", "not_installed"),
    ]
    assert result["packages"][0]["version"] == "1.0"
    gone = await run(
        client, "import importlib.machinery\nimportlib.machinery.PathFinder.find_spec('pmcp_tiny')"
    )
    assert gone["result"] is None
    assert importlib.metadata.version("iniconfig") != "0.0.1"
    text = await tool_error(client, "uninstall_packages", {"packages": "pmcp-tiny==1.0"})
    assert text.startswith("INVALID_INPUT:")


async def test_list_packages(client: Client[Any]) -> None:
    await call(client, "install_dependencies", packages="pmcp-tiny==1.0")
    listed = await call(client, "list_packages")
    by_name = {p["name"]: p for p in listed["packages"]}
    assert by_name["pmcp-tiny"] == {
        "name": "pmcp-tiny",
        "version": "1.0",
        "location": "environment",
    }
    assert by_name["ipykernel"]["location"] == "server"
    assert listed["total"] == len(listed["packages"])
    assert listed["environment_total"] == 1
    assert listed["venv_name"] == "default"


async def test_user_install_never_changes_the_server_environment(
    client: Client[Any], settings: Settings
) -> None:
    server_version = importlib.metadata.version("iniconfig")
    server_dist = importlib.metadata.distribution("iniconfig")
    server_files = sorted(str(f) for f in server_dist.files or [])
    result = await call(client, "install_dependencies", packages="iniconfig==0.0.1")
    outcome = result["packages"][0]
    assert (outcome["status"], outcome["previous_version"]) == ("updated", server_version)
    # The kernel imports the environment's copy: its site-packages comes first.
    seen = await run(
        client,
        "import iniconfig, importlib.metadata, sys\n"
        "(iniconfig.FAKE, importlib.metadata.version('iniconfig'), iniconfig.__file__)",
    )
    assert seen["status"] == "ok", seen["error"]
    fake, version, where = eval(seen["result"])  # a tuple repr of plain values
    assert (fake, version) == (True, "0.0.1")
    assert Path(where).is_relative_to(settings.venvs_path / "default")
    # The server's copy is untouched.
    assert importlib.metadata.version("iniconfig") == server_version
    dist = importlib.metadata.distribution("iniconfig")
    assert sorted(str(f) for f in dist.files or []) == server_files
    import iniconfig

    assert not hasattr(iniconfig, "FAKE")


async def test_install_for_a_session_goes_to_its_own_folder(client: Client[Any]) -> None:
    await call(client, "create_venv", venv_name="ds")
    await call(client, "create_session", session_id="analysis", venv_name="ds")
    await call(client, "create_session", session_id="other", venv_name="ds")
    result = await call(
        client, "install_dependencies", packages="pmcp-tiny==2.0", session_id="analysis"
    )
    assert result["venv_name"] == "ds"
    assert result["session_id"] == "analysis"
    assert result["packages"][0]["location"] == "session"
    assert result["sessions_refreshed"] == ["analysis"]
    there = await run(client, "import pmcp_tiny\npmcp_tiny.VERSION", session_id="analysis")
    assert there["result"] == "'2.0'"
    for session in ("default", "other"):  # the environment is shared: it is left unchanged
        elsewhere = await run(client, "import pmcp_tiny", session_id=session)
        assert elsewhere["error"]["ename"] == "ModuleNotFoundError"
    by_venv = await call(client, "list_packages", venv_name="ds")
    assert by_venv["environment_total"] == 0
    by_session = await call(client, "list_packages", session_id="analysis")
    assert by_session["session_id"] == "analysis"
    assert by_session["environment_total"] == 1
    listed = {p["name"]: p["location"] for p in by_session["packages"]}
    assert listed["pmcp-tiny"] == "session"
    assert listed["ipykernel"] == "server"
    removed = await call(client, "uninstall_packages", packages="pmcp-tiny", session_id="analysis")
    assert removed["packages"][0]["status"] == "removed"
    gone = await run(
        client,
        "import importlib.machinery as m\nm.PathFinder.find_spec('pmcp_tiny') is None",
        session_id="analysis",
    )
    assert gone["result"] == "True"
    text = await tool_error(
        client,
        "install_dependencies",
        {"packages": "pmcp-tiny", "session_id": "analysis", "venv_name": "default"},
    )
    assert text.startswith("INVALID_INPUT:")
    assert (await tool_error(client, "list_packages", {"venv_name": "nope"})).startswith(
        "VENV_NOT_FOUND:"
    )
    text = await tool_error(client, "install_dependencies", {"packages": "x", "session_id": "zz"})
    assert text.startswith("SESSION_NOT_FOUND:")


async def test_installs_serialize_per_environment_and_run_in_parallel_across(
    client: Client[Any], services: Services
) -> None:
    await call(client, "create_venv", venv_name="other")
    lock = services.environments.installer.lock_for("default")
    await lock.acquire()
    try:
        into_default = asyncio.create_task(
            call(client, "install_dependencies", packages="pmcp-tiny==1.0")
        )
        # Another environment is not held up by the default one's lock.
        into_other = await call(
            client, "install_dependencies", packages="pmcp-tiny==2.0", venv_name="other"
        )
        assert into_other["packages"][0]["status"] == "installed"
        assert not into_default.done()
    finally:
        lock.release()
    assert (await into_default)["packages"][0]["version"] == "1.0"
    # Concurrent installs into one environment both complete, one after the other.
    first, second = await asyncio.gather(
        call(client, "install_dependencies", packages="pmcp-other"),
        call(client, "install_dependencies", packages="pmcp-uses-tiny"),
    )
    assert first["packages"][0]["status"] == second["packages"][0]["status"] == "installed"


@pytest.fixture
def silent_index() -> Iterator[str]:
    """An index URL whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/simple"
    listener.close()


async def test_install_timeout_stops_the_installer(silent_index: str, workspace: Path) -> None:
    from python_mcp_server.server.app import build_server

    settings = Settings(
        workspace_dir=workspace,
        kernel_pool_size=0,
        session_idle_timeout=0,
        pip_index_url=silent_index,
        install_timeout=1.5,
    )
    async with Client(build_server(settings)) as client:
        text = await tool_error(client, "install_dependencies", {"packages": "pmcp-slow"})
    assert text.startswith("PACKAGE_INSTALLATION_ERROR: installing pmcp-slow did not finish")
    assert "MCP_INSTALL_TIMEOUT" in text
    leftover = [p for p in psutil.Process().children(recursive=True) if "uv" in p.name().lower()]
    assert not leftover


@pytest.mark.parametrize("settings_overrides", [{"kernel_pool_size": 0}])
async def test_real_install_from_the_registry(client: Client[Any]) -> None:
    result = await call(client, "install_dependencies", packages="tomli-w")
    (outcome,) = result["packages"]
    assert outcome["status"] == "installed"
    assert outcome["version"]
    done = await run(client, "import tomli_w\ntomli_w.dumps({'a': 1})")
    assert done["result"] == "'a = 1\\n'"


async def test_installing_into_the_default_environment_renews_the_pool(
    client: Client[Any], services: Services
) -> None:
    """Pooled kernels started before an install held the environment's old imports: the
    pool replaces them, and the next new session's kernel is a fresh one."""
    pool = services.sessions.pool
    assert await pool.wait_full(60)
    before = {c.kernel.pid for c in pool._ready}
    await call(client, "install_dependencies", packages="pmcp-tiny==1.0")
    assert pool.ready_count == 0 or not before & {c.kernel.pid for c in pool._ready}
    assert await pool.wait_full(60)
    assert not before & {c.kernel.pid for c in pool._ready}
    await call(client, "create_session", session_id="after")
    data = await run(client, "import pmcp_tiny; pmcp_tiny.__name__", session_id="after")
    assert data["result"] == "'pmcp_tiny'"
