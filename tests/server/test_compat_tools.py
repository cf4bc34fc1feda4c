"""Compat package, environment, health, history and safety tools (real installs, real kernels).

Node-executor names take camelCase arguments; where a native tool of the same name exists,
the compat variant replaces it and still takes the native snake_case arguments.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import call, run, tool_error
from tests.wheels import build_test_wheels


@pytest.fixture(scope="module")
def wheel_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def settings_overrides(wheel_settings: dict[str, Any]) -> dict[str, Any]:
    return {**wheel_settings, "toolsets": "all"}


async def test_install_packages_list_or_comma_string_then_import(client: Client[Any]) -> None:
    result = await call(client, "install_packages", packages=["pmcp-tiny==1.0"])
    assert [p["version"] for p in result["packages"]] == ["1.0"]
    result = await call(client, "install_packages", packages="pmcp-other, pmcp-tiny==2.0")
    assert {p["name"]: p["version"] for p in result["packages"]} == {
        "pmcp-other": "1.0",
        "pmcp-tiny": "2.0",
    }
    done = await call(
        client, "execute_python", code="import pmcp_other, pmcp_tiny\nprint(pmcp_tiny.VERSION)"
    )
    assert done["output"] == "2.0"


async def test_install_failure_is_package_installation_error(client: Client[Any]) -> None:
    text = await tool_error(client, "install_packages", {"packages": ["pmcp-missing"]})
    assert text.startswith("PACKAGE_INSTALLATION_ERROR:")
    assert "pmcp-missing" in text
    text = await tool_error(client, "install_packages", {"packages": "-r requirements.txt"})
    assert text.startswith("INVALID_INPUT:")


async def test_list_and_uninstall_in_both_argument_styles(client: Client[Any]) -> None:
    await call(client, "install_packages", packages="pmcp-tiny==1.0")
    listed = await call(client, "list_packages")
    assert {"name": "pmcp-tiny", "version": "1.0", "location": "environment"} in listed["packages"]
    by_camel = await call(client, "list_packages", venvName="default")
    by_snake = await call(client, "list_packages", venv_name="default")
    assert by_camel["packages"] == by_snake["packages"] == listed["packages"]
    removed = await call(client, "uninstall_packages", packages="pmcp-tiny", venvName="default")
    assert removed["packages"][0]["status"] == "removed"
    again = await call(client, "list_packages", venv_name="default")
    assert "pmcp-tiny" not in {p["name"] for p in again["packages"]}
    text = await tool_error(client, "list_packages", {"venvName": "default", "venv_name": "other"})
    assert text.startswith("INVALID_INPUT:")


async def test_venv_lifecycle_camel_case_and_execute_python_in_it(client: Client[Any]) -> None:
    created = await call(client, "create_venv", venvName="ml", description="for models")
    assert created["action"] == "created"
    assert created["venv"]["description"] == "for models"
    await call(client, "install_packages", packages=["pmcp-tiny==2.0"], venvName="ml")
    inside = await client.call_tool(
        "execute_python",
        {
            "code": "import sys, pmcp_tiny\nprint(sys.prefix.endswith('ml'), pmcp_tiny.VERSION)",
            "venvName": "ml",
        },
    )
    assert inside.structured_content is not None
    assert inside.structured_content["output"] == "True 2.0"
    assert inside.structured_content["sessionId"] == "venv-ml"
    outside = await run(client, "import pmcp_tiny")
    assert outside["error"]["ename"] == "ModuleNotFoundError", "the default env is untouched"
    described = await call(client, "set_venv_description", venvName="ml", description="models")
    assert described["venv"]["description"] == "models"
    names = {v["name"]: v for v in (await call(client, "list_venvs"))["venvs"]}
    assert names["ml"]["sessions"] == ["venv-ml"]
    text = await tool_error(client, "delete_venv", {"venvName": "ml"})
    assert text.startswith("VENV_IN_USE:")
    await client.call_tool("delete_session", {"session_id": "venv-ml"})
    deleted = await call(client, "delete_venv", venv_name="ml")
    assert deleted["action"] == "deleted"
    assert "ml" not in {v["name"] for v in (await call(client, "list_venvs"))["venvs"]}
    text = await tool_error(client, "delete_venv", {"venvName": "default"})
    assert text.startswith("CONFIRMATION_REQUIRED:")
    text = await tool_error(client, "execute_python", {"code": "1", "venvName": "nope"})
    assert text.startswith("VENV_NOT_FOUND:")


async def test_chinese_package_tools(client: Client[Any]) -> None:
    installed = await call(client, "install_python_package", package_name="pmcp-other==1.0")
    assert installed["success"] is True
    assert installed["version"] == "1.0"
    datetime.fromisoformat(installed["installed_at"])
    failed = await call(client, "install_python_package", package_name="pmcp-missing")
    assert failed["success"] is False
    assert failed["error_code"] == "PACKAGE_INSTALLATION_ERROR"
    assert "pmcp-missing" in failed["message"]
    listing = await call(client, "list_installed_packages")
    assert set(listing) == {"packages", "total_count", "retrieved_at", "venv_name"}
    assert {"name": "pmcp-other", "version": "1.0"} in listing["packages"]
    assert listing["total_count"] == len(listing["packages"])


async def test_health_check_has_node_and_native_fields(client: Client[Any]) -> None:
    await run(client, "1 + 1")
    await run(client, "1 / 0")
    health = await call(client, "health_check", venvName="default")
    assert health["status"] in ("healthy", "degraded")
    assert health["pythonVersion"].startswith("Python 3.")
    assert health["config"] == health["settings"]
    metrics = health["metrics"]
    assert metrics["totalExecutions"] == metrics["total_executions"] >= 2
    assert metrics["totalErrors"] == metrics["errors"] >= 1
    assert metrics["successRate"] == pytest.approx(metrics["success_rate"] * 100, abs=0.01)
    assert metrics["averageExecutionTimeMs"] > 0
    assert health["environment"]["ok"] is True
    assert health["activeExecutions"] == 0
    native_style = await call(client, "health_check", venv_name="default", session_id="default")
    assert native_style["kernel"]["session_id"] == "default"


async def test_history_tools_have_both_shapes(client: Client[Any]) -> None:
    await call(client, "clear_execution_history")
    await call(client, "execute_python_code", code="print('one')")
    await call(client, "execute_python_code", code="raise ValueError('two')")
    history = await call(client, "get_execution_history", limit=10)
    assert history["total_count"] == history["total"] == 2
    assert history["history"] == history["entries"]
    newest, oldest = history["history"]
    assert newest["success"] is False
    assert oldest["success"] is True
    assert oldest["code"] == "print('one')"
    assert oldest["execution_time"] == oldest["duration"]
    assert oldest["executed_at"] == oldest["started"]
    only_errors = await call(client, "get_execution_history", status="error")
    assert [e["code"] for e in only_errors["history"]] == ["raise ValueError('two')"]
    cleared = await call(client, "clear_execution_history")
    assert cleared["cleared_count"] == 2
    datetime.fromisoformat(cleared["cleared_at"])
    assert (await call(client, "get_execution_history"))["total_count"] == 0


async def test_check_code_safety_shape(client: Client[Any]) -> None:
    safe = await call(client, "check_code_safety", code="print('hi')")
    assert safe["is_safe"] is True
    assert safe["warnings"] == []
    assert safe["code"] == "print('hi')"
    datetime.fromisoformat(safe["checked_at"])
    unsafe = await call(client, "check_code_safety", code="import os\nos.system('ls')")
    assert unsafe["is_safe"] is False
    assert any(w["category"] == "dangerous_call" for w in unsafe["warnings"])


async def test_execute_python_runs_a_workspace_script(client: Client[Any], workspace: Path) -> None:
    (workspace / "scripts" / "hello.py").write_text("name = input()\nprint('hello', name)\n")
    result = await call(client, "execute_python", scriptPath="scripts/hello.py", inputData=["Ada"])
    assert result["output"] == "hello Ada"
    text = await tool_error(client, "execute_python", {"scriptPath": "../outside.py"})
    assert text.startswith("PATH_OUTSIDE_WORKSPACE:")
    text = await tool_error(client, "execute_python", {"code": "1", "scriptPath": "x.py"})
    assert text.startswith("INVALID_INPUT:")
