"""MCP_AUTO_INSTALL through the MCP client: missing imports installed before the run."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import run
from tests.wheels import build_test_wheels


@pytest.fixture(scope="module")
def wheel_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def settings_overrides(wheel_settings: dict[str, Any]) -> dict[str, Any]:
    return {**wheel_settings, "auto_install": True}


async def test_missing_import_is_installed_before_the_run(client: Client[Any]) -> None:
    result = await run(client, "import os, pmcp_tiny\nprint(pmcp_tiny.VERSION)")
    assert result["status"] == "ok", result["error"]
    assert result["stdout"] == "2.0\n"
    info = result["dependencies_info"]
    assert info["venv_name"] == "default"
    assert info["missing_imports"] == ["pmcp_tiny"]
    assert info["requested"] == ["pmcp-tiny"]
    assert [(p["name"], p["version"]) for p in info["installed"]] == [("pmcp-tiny", "2.0")]
    assert info["failed"] == []
    again = await run(client, "import pmcp_tiny")
    assert again["dependencies_info"] is None


async def test_failures_are_reported_and_the_rest_installed(client: Client[Any]) -> None:
    code = "import pmcp_other\nimport pmcp_absent_thing"
    result = await run(client, code)
    assert result["status"] == "error"
    assert result["error"]["ename"] == "ModuleNotFoundError"
    info = result["dependencies_info"]
    assert info["missing_imports"] == ["pmcp_absent_thing", "pmcp_other"]
    assert info["failed"] == ["pmcp-absent-thing"]
    assert "pmcp-absent-thing" in info["error"]
    assert [p["name"] for p in info["installed"]] == ["pmcp-other"]
    assert (await run(client, "import pmcp_other; 1"))["status"] == "ok"


async def test_optional_imports_and_local_modules_are_left_alone(client: Client[Any]) -> None:
    await run(client, "open('my_local_mod.py', 'w').write('Y = 2')")
    code = "try:\n    import pmcp_tiny\nexcept ImportError:\n    pass\nimport my_local_mod"
    result = await run(client, code)
    assert result["status"] == "ok", result["error"]
    assert result["dependencies_info"] is None
    gone = await run(client, "import importlib.util\nimportlib.util.find_spec('pmcp_tiny')")
    assert gone["result"] is None


@pytest.mark.parametrize("settings_overrides", [{"auto_install": False}])
async def test_off_by_default(client: Client[Any]) -> None:
    result = await run(client, "import pmcp_tiny")
    assert result["error"]["ename"] == "ModuleNotFoundError"
    assert result["dependencies_info"] is None
