"""Compat execution tools: execute_python (Node executors), execute_python_code (Chinese)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.models.compat import ExecutePythonCodeResult, ExecutePythonResult
from tests.helpers import tool_error


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"toolsets": "all"}


async def call(client: Client[Any], tool: str, arguments: dict[str, Any]) -> Any:
    return await client.call_tool(tool, arguments, raise_on_error=False)


async def test_execute_python_returns_the_output_as_text(client: Client[Any]) -> None:
    result = await call(client, "execute_python", {"code": "x = 6\nprint('hi')\nprint(x * 7)"})
    assert not result.is_error
    assert result.content[0].text == "hi\n42"
    data = ExecutePythonResult.model_validate(result.structured_content)
    assert data.success
    assert data.error is None
    assert data.stdout == "hi\n42\n"
    assert data.venvName == "default"
    assert data.executionTimeMs > 0
    again = await call(client, "execute_python", {"code": "print(x)"})
    assert again.content[0].text == "6", "variables persist between calls"


async def test_execute_python_input_data(client: Client[Any]) -> None:
    code = "a = input()\nb = input()\nprint(a + '-' + b)"
    result = await call(client, "execute_python", {"code": code, "inputData": ["one", "two"]})
    assert result.content[0].text == "one-two"


async def test_execute_python_error_is_an_error_result_with_python_error(
    client: Client[Any],
) -> None:
    result = await call(client, "execute_python", {"code": "print('before')\n{}['k']"})
    assert result.is_error
    text = result.content[0].text
    assert text.startswith("Error executing Python code: PYTHON_ERROR: KeyError: 'k'")
    assert "before" in text
    data = ExecutePythonResult.model_validate(result.structured_content)
    assert not data.success
    assert data.error is not None
    assert data.error.code == "PYTHON_ERROR"
    assert data.error.traceback


async def test_execute_python_without_code_is_invalid_input(client: Client[Any]) -> None:
    text = await tool_error(client, "execute_python", {"inputData": ["x"]})
    assert text.startswith("INVALID_INPUT:")


@pytest.mark.parametrize("settings_overrides", [{"toolsets": "all", "execution_timeout": 1}])
async def test_execute_python_timeout_code(client: Client[Any]) -> None:
    result = await call(client, "execute_python", {"code": "import time\ntime.sleep(30)"})
    data = ExecutePythonResult.model_validate(result.structured_content)
    assert result.is_error
    assert data.error is not None
    assert data.error.code == "EXECUTION_TIMEOUT"
    assert "EXECUTION_TIMEOUT" in result.content[0].text


async def test_execute_python_code_shape_and_success(client: Client[Any]) -> None:
    result = await call(client, "execute_python_code", {"code": "print(2 ** 10)"})
    assert not result.is_error
    raw = result.structured_content
    assert set(raw) == {
        "execution_id",
        "success",
        "stdout",
        "stderr",
        "return_code",
        "execution_time",
        "dependencies_info",
        "executed_at",
        "completed_at",
        "error_code",
    }
    data = ExecutePythonCodeResult.model_validate(raw)
    assert data.success
    assert data.return_code == 0
    assert data.error_code is None
    assert data.stdout == "1024\n"
    assert datetime.fromisoformat(raw["executed_at"]) <= datetime.fromisoformat(raw["completed_at"])


async def test_execute_python_code_failure_puts_traceback_in_stderr(client: Client[Any]) -> None:
    result = await call(client, "execute_python_code", {"code": "raise RuntimeError('boom')"})
    assert not result.is_error, "the Chinese executor reports failures as data"
    data = ExecutePythonCodeResult.model_validate(result.structured_content)
    assert not data.success
    assert data.return_code == 1
    assert data.error_code == "PYTHON_ERROR"
    assert "RuntimeError: boom" in data.stderr


async def test_execute_python_code_timeout_keeps_state(client: Client[Any]) -> None:
    await call(client, "execute_python_code", {"code": "kept = 'yes'"})
    result = await call(
        client, "execute_python_code", {"code": "import time\ntime.sleep(30)", "timeout": 1}
    )
    data = ExecutePythonCodeResult.model_validate(result.structured_content)
    assert data.return_code == 124
    assert data.error_code == "EXECUTION_TIMEOUT"
    after = await call(client, "execute_python_code", {"code": "print(kept)"})
    assert after.structured_content["stdout"] == "yes\n"


async def test_execute_python_code_kernel_death_is_137(client: Client[Any]) -> None:
    result = await call(client, "execute_python_code", {"code": "import os\nos._exit(3)"})
    data = ExecutePythonCodeResult.model_validate(result.structured_content)
    assert not data.success
    assert data.return_code == 137
    assert data.error_code == "PYTHON_ERROR"
    after = await call(client, "execute_python_code", {"code": "print('back')"})
    assert after.structured_content["stdout"] == "back\n"
