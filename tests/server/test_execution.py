"""run_python_code through the in-memory MCP client, against real kernels."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import SWALLOWS_INTERRUPTS, run, tool_error, wait_for_path
from tests.helpers import call as call_tool


async def test_variables_persist_between_calls(client: Client[Any]) -> None:
    first = await run(client, "x = 20\ny = 22")
    assert first["status"] == "ok"
    second = await run(client, "x + y")
    assert second["result"] == "42"
    assert second["session_id"] == "default"
    assert len(second["execution_id"]) >= 8
    sessions = await client.call_tool("list_sessions", {})
    assert sessions.structured_content is not None
    assert sessions.structured_content["sessions"][0]["execution_count"] == 2


async def test_stdout_stderr_and_result(client: Client[Any]) -> None:
    out = await run(client, "import sys\nprint('out')\nprint('err', file=sys.stderr)\n'v'")
    assert out["stdout"] == "out\n"
    assert out["stderr"] == "err\n"
    assert out["result"] == "'v'"
    assert out["error"] is None


async def test_execution_time_is_sent_only_when_it_is_a_second_or_more(
    client: Client[Any],
) -> None:
    quick = await client.call_tool("run_python_code", {"code": "1"})
    assert quick.structured_content is not None
    assert "execution_time" not in quick.structured_content
    slow = await client.call_tool("run_python_code", {"code": "import time; time.sleep(1.05)"})
    assert slow.structured_content is not None
    assert slow.structured_content["execution_time"] >= 1.0


async def test_exception_is_a_successful_call_with_status_error(client: Client[Any]) -> None:
    result = await client.call_tool("run_python_code", {"code": "print('before')\n1/0"})
    assert not result.is_error
    data = result.structured_content
    assert data is not None
    assert data["status"] == "error"
    assert data["stdout"] == "before\n"
    assert data["error"]["ename"] == "ZeroDivisionError"
    assert "division by zero" in data["error"]["evalue"]
    assert not any("\x1b" in line for line in data["error"]["traceback"])


async def test_results_are_structured_without_a_listed_output_schema(
    client: Client[Any],
) -> None:
    tools = {tool.name: tool for tool in await client.list_tools()}
    assert tools["run_python_code"].output_schema is None  # tools/list stays small
    result = await client.call_tool("run_python_code", {"code": "print('hi')"})
    assert result.structured_content is not None
    assert set(result.structured_content) == {"status", "stdout", "session_id", "execution_id"}


async def test_plt_show_returns_an_image_and_saves_it(client: Client[Any], workspace: Path) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
    result = await client.call_tool("run_python_code", {"code": code})
    images = [block for block in result.content if block.type == "image"]
    assert len(images) == 1
    assert images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG")
    data = result.structured_content
    assert data is not None
    saved = [item for item in data["outputs"] if item["mime_type"] == "image/png"]
    assert saved[0]["path"].startswith("outputs/")
    assert (workspace / saved[0]["path"]).read_bytes().startswith(b"\x89PNG")


async def test_html_and_markdown_displays_are_text_items(client: Client[Any]) -> None:
    code = (
        "from IPython.display import HTML, Markdown, JSON, display\n"
        "display(HTML('<b>bold</b>'))\ndisplay(Markdown('# title'))\ndisplay(JSON({'a': 1}))"
    )
    data = await run(client, code)
    by_type = {item["mime_type"]: item["text"] for item in data["outputs"]}
    assert by_type["text/html"] == "<b>bold</b>"
    assert by_type["text/markdown"] == "# title"
    assert '"a": 1' in by_type["application/json"]


async def test_input_data_answers_input_then_eof(client: Client[Any]) -> None:
    code = "a = input('a? ')\nimport getpass\nb = getpass.getpass('b? ')\nprint(a, b)"
    data = await run(client, code, input_data=["one", "two"])
    assert data["status"] == "ok"
    assert "one two" in data["stdout"]
    started = time.monotonic()
    data = await run(client, "input('again? ')", input_data=[])
    assert time.monotonic() - started < 10
    assert data["status"] == "error"
    assert data["error"]["ename"] == "EOFError"
    assert "input_data" in data["error"]["evalue"]


async def test_input_without_input_data_fails_at_once(client: Client[Any]) -> None:
    data = await run(client, "input()")
    assert data["status"] == "error"
    assert data["error"]["ename"] == "EOFError"


async def test_timeout_interrupts_and_keeps_variables(client: Client[Any]) -> None:
    await run(client, "kept = 'still here'")
    data = await run(
        client,
        "import time\nprint('started', flush=True)\nwhile True: time.sleep(0.05)",
        timeout=1,
    )
    assert data["status"] == "timeout"
    assert data["stdout"] == "started\n"
    assert data["error"]["code"] == "EXECUTION_TIMEOUT"
    assert data["kernel_restarted"] is False
    after = await run(client, "kept")
    assert after["result"] == "'still here'"


async def test_code_swallowing_interrupts_gets_the_kernel_restarted(client: Client[Any]) -> None:
    await run(client, "lost = 1")
    data = await run(client, SWALLOWS_INTERRUPTS, timeout=1)
    assert data["status"] == "timeout"
    assert data["kernel_restarted"] is True
    assert "restarted" in data["message"]
    after = await run(client, "'lost' in dir()")
    assert after["result"] == "False"
    assert (await run(client, "1+1"))["result"] == "2"


@pytest.mark.parametrize(
    "code",
    [
        "import os; os._exit(1)",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        "import ctypes; ctypes.string_at(0)",
    ],
    ids=["exit", "sigkill", "segfault"],
)
async def test_kernel_death_is_reported_and_recovered(client: Client[Any], code: str) -> None:
    await run(client, "before = 1")
    data = await run(client, code)
    assert data["status"] == "error"
    assert data["error"]["code"] == "KERNEL_DIED"
    assert data["kernel_restarted"] is True
    assert data["error"]["evalue"]
    assert (await run(client, "1+1"))["result"] == "2"


async def test_kernel_killed_from_outside_between_calls(client: Client[Any]) -> None:
    await run(client, "lost = 1")
    listed = await call_tool(client, "list_sessions")
    pid = listed["sessions"][0]["kernel_pid"]
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):  # the server notices the death: the session shows "dead"
        if (await call_tool(client, "list_sessions"))["sessions"][0]["status"] == "dead":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the killed kernel never showed as dead")
    health = await call_tool(client, "get_kernel_health")
    assert health["status"] == "dead"  # one vocabulary for both tools
    # The code never reached the dead kernel: it runs on a new one, and the result says
    # the kernel was replaced, why, and that the variables are gone.
    data = await run(client, "2")
    assert (data["status"], data["result"], data["code_ran"]) == ("ok", "2", True)
    assert data["kernel_restarted"] is True
    assert "SIGKILL" in data["kernel_replacement"]["reason"]
    assert "replaced before this code ran" in data["message"]
    assert "variables were lost" in data["message"]
    after = await run(client, "'lost' in dir()")
    assert (after["result"], after["kernel_restarted"]) == ("False", False)


async def test_ten_megabyte_print_is_bounded_and_saved(
    client: Client[Any], workspace: Path
) -> None:
    data = await run(client, "print('x' * 10_000_000)")
    assert data["status"] == "ok"
    assert data["truncated"] is True
    assert len(data["stdout"]) < 40_000  # MCP_MAX_RESULT_CHARS
    assert data["stdout"].startswith("x" * 1000)
    assert data["stdout"].endswith("x" * 1000 + "\n")
    saved = workspace / data["stdout_path"]
    assert saved.stat().st_size == 10_000_001
    assert data["stdout_path"] in data["message"]


async def test_progress_notifications_while_running(client: Client[Any]) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    result = await client.call_tool(
        "run_python_code",
        {"code": "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.5)"},
        progress_handler=on_progress,
    )
    assert result.structured_content is not None
    assert result.structured_content["status"] == "ok"
    assert len(seen) >= 2
    assert all(a[0] < b[0] for a, b in itertools.pairwise(seen))
    assert any(message and "0" in message for _, message in seen)


async def test_calls_on_one_session_run_in_order(client: Client[Any]) -> None:
    await run(client, "order = []")
    calls = [
        run(client, f"import time\ntime.sleep({0.3 if i == 0 else 0})\norder.append({i})")
        for i in range(4)
    ]
    tasks = []
    for call in calls:
        tasks.append(asyncio.ensure_future(call))
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    assert (await run(client, "order"))["result"] == "[0, 1, 2, 3]"


async def test_sessions_run_in_parallel_and_ping_answers(
    client: Client[Any], workspace: Path
) -> None:
    """Each cell waits for the other's mark: they finish only if the sessions overlap."""
    await client.call_tool("create_session", {"session_id": "a"})
    await client.call_tool("create_session", {"session_id": "b"})
    cell = (
        "import os, time\n"
        "open('{me}.started', 'w').close()\n"
        "deadline = time.monotonic() + 30\n"
        "while not (os.path.exists('{other}.started') and os.path.exists('pinged')):\n"
        "    assert time.monotonic() < deadline, 'the sessions did not overlap'\n"
        "    time.sleep(0.01)\n"
        "'{me} done'"
    )
    slow = [
        asyncio.ensure_future(
            run(client, cell.format(me=me, other=other), session_id=me, timeout=60)
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    await wait_for_path(workspace / "a.started")
    await wait_for_path(workspace / "b.started")
    pong = await client.call_tool("ping", {})
    assert not any(task.done() for task in slow)  # the ping was answered beside both cells
    (workspace / "pinged").touch()
    results = await asyncio.gather(*slow)
    assert pong.structured_content is not None
    assert pong.structured_content["pong"] is True
    assert [r["result"] for r in results] == ["'a done'", "'b done'"], results


async def test_cancelled_call_interrupts_the_kernel(
    sync_client: Client[Any], workspace: Path
) -> None:
    """A synchronous call the client cancels (notifications/cancelled); tasks are
    cancelled with tasks/cancel (tests/server/test_tasks.py)."""
    client = sync_client
    await run(client, "flag = 'kept'")
    task = asyncio.ensure_future(
        run(client, "import time\nopen('running', 'w').close()\nwhile True: time.sleep(0.05)")
    )
    await wait_for_path(workspace / "running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await asyncio.wait_for(run(client, "flag"), timeout=15)
    assert after["result"] == "'kept'"


async def test_empty_code_is_invalid_input(client: Client[Any]) -> None:
    text = await tool_error(client, "run_python_code", {"code": "   "})
    assert text.startswith("INVALID_INPUT:")


async def test_bad_arguments_are_invalid_input(client: Client[Any]) -> None:
    text = await tool_error(client, "run_python_code", {"code": "1", "timeout": "soon"})
    assert text.startswith("INVALID_INPUT:")
    assert "timeout" in text
    assert "Traceback" not in text


async def test_unknown_session_is_session_not_found(client: Client[Any]) -> None:
    text = await tool_error(client, "run_python_code", {"code": "1", "session_id": "ghost"})
    assert text.startswith("SESSION_NOT_FOUND:")
