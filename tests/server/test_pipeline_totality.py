"""Every execution attempt ends in exactly one recorded outcome (history and audit)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.server.services import Services
from tests.helpers import call, run, tool_error

UNSAFE = "import os\nos.system('true')"


def executions_audited(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    records = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "python_mcp_server.audit"
    ]
    return [record for record in records if record["event"] == "execution"]


@pytest.mark.parametrize("settings_overrides", [{"safety_mode": "block"}])
async def test_a_refused_run_is_recorded_once(
    client: Client[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.audit")
    error = await tool_error(client, "run_python_code", {"code": UNSAFE})
    assert error.startswith("UNSAFE_CODE:")
    history = await call(client, "get_execution_history")
    assert history["total"] == 1
    entry = history["entries"][0]
    assert entry["status"] == "error"
    assert entry["error"].startswith("UNSAFE_CODE: ")
    assert entry["code"] == UNSAFE
    lines = executions_audited(caplog)
    assert len(lines) == 1
    assert lines[0]["error"] == "UNSAFE_CODE"
    assert lines[0]["execution_id"] == entry["execution_id"]


class FailingAfter:
    """A hook whose after step fails (a fault no real hook can be made to produce)."""

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        return None

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        raise RuntimeError("hook broke")


async def test_a_failing_after_hook_does_not_hide_the_result(
    client: Client[Any], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.audit")
    services.execution.hooks.insert(0, FailingAfter())
    done = await run(client, "print(6 * 7)")
    assert done["status"] == "ok"
    assert done["stdout"] == "42\n"
    assert "FailingAfter: hook broke" in done["message"]
    history = await call(client, "get_execution_history")
    assert [e["execution_id"] for e in history["entries"]] == [done["execution_id"]]
    assert [line["execution_id"] for line in executions_audited(caplog)] == [done["execution_id"]]
