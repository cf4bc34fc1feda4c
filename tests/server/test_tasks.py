"""Long calls as MCP tasks, through the real protocol and the fastmcp client's task handle:
status with output while running, tasks/cancel that keeps variables (or says why not),
errors with their codes, and the synchronous call for clients without tasks."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import mcp_types
import pytest
from fastmcp import Client, Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools.base import InputRequiredToolResult
from fastmcp.utilities.tasks import TaskConfig
from fastmcp_tasks import ToolTask, call_tool_task
from fastmcp_tasks.settings import DocketSettings
from mcp_types import TextContent

from python_mcp_server.server.tasks import MEMORY_CHECK_INTERVAL, ProjectTasks, tasks_extension
from python_mcp_server.settings import Settings
from tests.helpers import SWALLOWS_INTERRUPTS, call, run


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # A loaded machine may take a few seconds to deliver an interrupt; only a kernel that
    # ignores it should be restarted.
    return {"interrupt_grace": 8}


COUNTING_CELL = (
    "import time\n"
    "kept = 'set before the cancel'\n"
    "for i in range(100000):\n"
    "    print('line', i, flush=True)\n"
    "    time.sleep(0.1)\n"
)


async def wait_for_status(task: ToolTask, needle: str, deadline: float = 30.0) -> str:
    """Poll tasks/get until the task is working with ``needle`` in its status message."""
    with anyio.fail_after(deadline):
        while True:
            status = await task.status()
            message = status.status_message or ""
            if status.status == "working" and needle in message:
                return message
            assert status.status == "working", status
            await asyncio.sleep(0.1)


async def test_long_cell_reports_output_and_cancel_keeps_variables(client: Client[Any]) -> None:
    await run(client, "before = 1")
    task = await call_tool_task(client, "run_python_code", {"code": COUNTING_CELL})
    message = await wait_for_status(task, "line 3")
    assert message.startswith("running ")
    assert "latest output:" in message
    await task.cancel()
    final = await task.wait(timeout=30)
    assert final.status == "cancelled"
    after = await run(client, "(before, kept, i > 0)")
    assert after["status"] == "ok", after["error"]
    assert after["result"] == "(1, 'set before the cancel', True)"
    assert after["kernel_restarted"] is False
    assert not after["message"]


async def test_cancel_restarts_a_kernel_that_ignores_the_interrupt_and_says_so(
    client: Client[Any],
) -> None:
    await run(client, "before = 1")
    task = await call_tool_task(client, "run_python_code", {"code": SWALLOWS_INTERRUPTS})
    await wait_for_status(task, "running")
    await task.cancel()
    assert (await task.wait(timeout=30)).status == "cancelled"
    after = await run(client, "'before' in globals()")
    assert after["result"] == "False"
    assert "kernel was restarted" in after["message"]
    assert "variables were lost" in after["message"]
    again = await run(client, "1")  # said once
    assert not again["message"]


async def test_task_result_is_the_same_as_the_call(client: Client[Any]) -> None:
    task = await call_tool_task(client, "run_python_code", {"code": "print('hi')\n6 * 7"})
    result = await task.result()
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "hi\n"
    assert result.structured_content["result"] == "42"


def project_tasks(server: FastMCP) -> ProjectTasks:
    # FastMCP lists a server's extensions in no public attribute.
    found = [e for e in server._extensions.values() if isinstance(e, ProjectTasks)]
    assert len(found) == 1
    return found[0]


async def test_in_memory_worker_runs_only_while_a_task_exists(
    client: Client[Any], server: FastMCP, settings: Settings
) -> None:
    # An idle server runs no worker (its listener and scheduler wake the process many
    # times a second); a task starts it, and it stops once no task is left.
    assert tasks_extension(settings).docket_settings.minimum_check_interval == (
        MEMORY_CHECK_INTERVAL
    )
    demand = project_tasks(server).demand
    assert demand is not None
    # fastmcp-tasks built our worker (fails when a pinned version changed: see PINNED).
    assert demand.attached
    assert not demand.running
    for _ in range(2):  # the first task, and one after the worker stopped
        task = await call_tool_task(client, "run_python_code", {"code": "6 * 7"})
        assert (await task.result()).structured_content["result"] == "42"  # type: ignore[index]
        with anyio.fail_after(60):
            await demand.wait_idle()
        assert not demand.running


async def test_an_answer_to_a_task_wakes_the_stopped_worker(settings: Settings) -> None:
    # A task that asks for input ends its leg; the answer (tasks/update) starts the next
    # leg, which must wake a worker that stopped meanwhile. Our own tools do not ask from
    # a task (the approval question takes its fallback there), so a small server asks.
    mcp: FastMCP = FastMCP("asks")
    extension = tasks_extension(settings)
    mcp.add_extension(extension)

    @mcp.tool(task=TaskConfig(mode="optional"))
    async def ask(ctx: Context) -> Any:
        answers = ctx.input_responses
        if answers and "go" in answers:
            return "answered"
        params = mcp_types.ElicitRequestFormParams(
            message="go?",
            requested_schema={"type": "object", "properties": {"go": {"type": "boolean"}}},
        )
        request = mcp_types.ElicitRequest(params=params)
        return InputRequiredToolResult(
            mcp_types.InputRequiredResult(input_requests={"go": request})
        )

    async def answer(message: str, response_type: Any, params: Any, context: Any) -> Any:
        demand = extension.demand
        assert demand is not None
        with anyio.fail_after(60):
            await demand.wait_idle()  # the worker stopped after the first leg
        return {"go": True}

    async with Client(mcp, elicitation_handler=answer) as client:
        task = await call_tool_task(client, "ask", {})
        with anyio.fail_after(120):
            result = await task.result()
    assert [c.text for c in result.content if isinstance(c, TextContent)] == ["answered"]


def test_a_shared_task_store_keeps_docket_default_poll(settings: Settings) -> None:
    # Replicas sharing Redis sweep for tasks of a replica that stopped in the same loop.
    shared = settings.model_copy(update={"tasks_url": "redis://127.0.0.1:1/0"})
    docket = tasks_extension(shared).docket_settings
    assert docket.minimum_check_interval < MEMORY_CHECK_INTERVAL
    assert docket.minimum_check_interval == DocketSettings().minimum_check_interval


async def test_task_errors_keep_their_code(client: Client[Any]) -> None:
    task = await call_tool_task(client, "run_python_code", {"code": "1", "session_id": "ghost"})
    with pytest.raises(ToolError, match=r"^SESSION_NOT_FOUND: "):
        await task.result()


async def test_script_task_status_says_it_is_running(client: Client[Any]) -> None:
    await call(
        client,
        "save_script",
        name="slow",
        content="import time\nfor _ in range(40):\n    time.sleep(0.1)\nprint('done')\n",
    )
    task = await call_tool_task(client, "run_script", {"path": "scripts/slow.py"})
    message = await wait_for_status(task, "running")
    assert message.startswith("running ")
    result = await task.result()
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "done\n"


async def test_package_tools_run_as_tasks(client: Client[Any]) -> None:
    task = await call_tool_task(
        client, "uninstall_packages", {"packages": "not-installed-anywhere"}
    )
    result = await task.result()
    assert result.structured_content is not None
    assert result.structured_content["venv_name"] == "default"


async def test_a_client_without_tasks_gets_the_synchronous_call(
    sync_client: Client[Any],
) -> None:
    with pytest.raises(ToolError, match="did not run as a task"):
        await call_tool_task(sync_client, "run_python_code", {"code": "x = 5"})
    assert (await run(sync_client, "x"))["result"] == "5"
