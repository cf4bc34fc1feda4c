"""Safety mode ``ask`` through the real protocol: flagged code runs only when the user
approves it through the client's elicitation handler; a client that cannot elicit gets
the configured fallback, and the result says so."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.elicitation import ElicitResult

from tests.helpers import call, kernel_children, run, tool_error, wait_gone

FLAGGED = "import subprocess\nflagged = subprocess.run(['true']).returncode\nflagged"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"safety_mode": "ask"}


def asking_client(server: FastMCP, answer: bool | None, asked: list[str]) -> Client[Any]:
    async def handler(message: str, response_type: Any, params: Any, context: Any) -> Any:
        asked.append(message)
        if answer is None:
            return ElicitResult(action="decline")
        return {"approve": answer}

    return Client(server, elicitation_handler=handler)


@pytest.fixture
async def leak_check() -> AsyncIterator[None]:
    before = kernel_children()
    yield
    assert not wait_gone(kernel_children() - before)


@pytest.mark.usefixtures("leak_check")
async def test_approved_code_runs(server: FastMCP) -> None:
    asked: list[str] = []
    async with asking_client(server, True, asked) as client:
        plain = await run(client, "1 + 1")  # nothing flagged: nobody is asked
        assert plain["result"] == "2"
        assert asked == []
        result = await run(client, FLAGGED)
        assert result["status"] == "ok", result["error"]
        assert result["result"] == "0"
        assert "approved" in result["message"]
        assert len(asked) == 1
        assert "subprocess" in asked[0]


@pytest.mark.usefixtures("leak_check")
@pytest.mark.parametrize("answer", [False, None], ids=["unticked", "declined"])
async def test_refused_code_does_not_run(server: FastMCP, answer: bool | None) -> None:
    asked: list[str] = []
    async with asking_client(server, answer, asked) as client:
        text = await tool_error(client, "run_python_code", {"code": FLAGGED})
        assert text.startswith("UNSAFE_CODE:")
        assert "declined" in text
        assert len(asked) == 1
        after = await run(client, "'flagged' in globals()")
        assert after["result"] == "False"


async def test_client_without_elicitation_gets_the_block_fallback(client: Client[Any]) -> None:
    text = await tool_error(client, "run_python_code", {"code": FLAGGED})
    assert text.startswith("UNSAFE_CODE:")
    assert "cannot ask" in text
    assert "MCP_SAFETY_ASK_FALLBACK=block" in text
    assert (await run(client, "'flagged' in globals()"))["result"] == "False"


class TestWarnFallback:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"safety_mode": "ask", "safety_ask_fallback": "warn"}

    async def test_runs_with_warnings_and_says_why(self, client: Client[Any]) -> None:
        result = await run(client, FLAGGED)
        assert result["status"] == "ok", result["error"]
        assert result["result"] == "0"
        assert "cannot ask" in result["message"]
        assert result["warnings"]


FLAGGED_SCRIPT = (
    "import subprocess\nopen('ran.txt', 'w').write('yes')\n"
    "print(subprocess.run(['true']).returncode)\n"
)


def notebook_json(*sources: str) -> str:
    cells = [
        {
            "id": f"cell-{i}",
            "cell_type": "code",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        for i, source in enumerate(sources)
    ]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})


@pytest.mark.usefixtures("leak_check")
async def test_run_script_asks_about_the_scripts_source(server: FastMCP, workspace: Path) -> None:
    asked: list[str] = []
    async with asking_client(server, True, asked) as client:
        await call(client, "save_script", name="flagged", content=FLAGGED_SCRIPT)
        data = await call(client, "run_script", path="scripts/flagged.py")
        assert (data["status"], data["stdout"]) == ("ok", "0\n")
        assert "approved" in data["message"]
        assert len(asked) == 1
        assert "subprocess.run" in asked[0]
        assert (workspace / "ran.txt").read_text() == "yes"


@pytest.mark.usefixtures("leak_check")
async def test_run_script_without_elicitation_is_blocked(
    client: Client[Any], workspace: Path
) -> None:
    await call(client, "save_script", name="flagged", content=FLAGGED_SCRIPT)
    for mode in ("subprocess", "kernel"):
        text = await tool_error(client, "run_script", {"path": "scripts/flagged.py", "mode": mode})
        assert text.startswith("UNSAFE_CODE:")
        assert "MCP_SAFETY_ASK_FALLBACK=block" in text
    assert not (workspace / "ran.txt").exists()
    await call(client, "save_script", name="plain", content="print('fine')")
    assert (await call(client, "run_script", path="scripts/plain.py"))["stdout"] == "fine\n"


@pytest.mark.usefixtures("leak_check")
@pytest.mark.parametrize("answer", [True, False], ids=["approved", "declined"])
async def test_import_notebook_asks_about_its_cells(
    server: FastMCP, workspace: Path, answer: bool
) -> None:
    (workspace / "nb.ipynb").write_text(
        notebook_json(
            "step = 1", "import subprocess\nflagged = subprocess.run(['true']).returncode"
        )
    )
    asked: list[str] = []
    async with asking_client(server, answer, asked) as client:
        if answer:
            data = await call(client, "import_notebook", path="nb.ipynb")
            assert data["ran"] == 2
            assert "approved" in data["message"]
            assert (await run(client, "step + flagged"))["result"] == "1"
        else:
            text = await tool_error(client, "import_notebook", {"path": "nb.ipynb"})
            assert text.startswith("UNSAFE_CODE:")
            assert (await run(client, "'step' in globals()"))["result"] == "False"
        assert len(asked) == 1
        assert "step = 1" in asked[0]
        assert "subprocess.run" in asked[0]
