"""The core behaviours through the MCP protocol with kernels on a real Kernel Gateway."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from typing import Any

import pytest
from fastmcp import Client

from tests.gateway.conftest import Replicas
from tests.helpers import SWALLOWS_INTERRUPTS, call, run, tool_error


async def session_listing(client: Client[Any]) -> dict[str, dict[str, Any]]:
    listing = await call(client, "list_sessions")
    return {s["session_id"]: s for s in listing["sessions"]}


async def test_state_persists_on_a_gateway_kernel(
    gateway_client: Client[Any], replicas: Replicas
) -> None:
    first = await run(gateway_client, "x = 20\ny = 22")
    assert first["status"] == "ok"
    second = await run(gateway_client, "x + y")
    assert second["result"] == "42"
    kernel = replicas.gateway.kernel(replicas.kernel_id("default"))
    assert kernel is not None, "the session's kernel must carry the session's derived id"
    listed = (await session_listing(gateway_client))["default"]
    assert listed["kernel_pid"] is None
    assert listed["execution_count"] == 2
    assert listed["status"] == "idle"


async def test_kernel_works_in_the_shared_workspace(
    gateway_client: Client[Any], replicas: Replicas
) -> None:
    workspace = replicas.gateway.workspace
    data = await run(gateway_client, "import os\nprint(os.getcwd(), os.environ['OUTPUT_PATH'])")
    assert data["stdout"] == f"{workspace} {workspace / 'outputs'}\n"
    await call(gateway_client, "write_file", path="notes/hello.txt", content="from the tool")
    data = await run(gateway_client, "open('notes/hello.txt').read()")
    assert data["result"] == "'from the tool'"
    await run(gateway_client, "open('notes/made.txt', 'w').write('from the kernel')")
    read = await call(gateway_client, "read_file", path="notes/made.txt")
    assert "from the kernel" in str(read)


async def test_rich_output_image(gateway_client: Client[Any], replicas: Replicas) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
    result = await gateway_client.call_tool("run_python_code", {"code": code})
    images = [block for block in result.content if block.type == "image"]
    assert len(images) == 1
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG")
    data = result.structured_content
    assert data is not None
    saved = [item for item in data["outputs"] if item["mime_type"] == "image/png"]
    assert (replicas.gateway.workspace / saved[0]["path"]).read_bytes().startswith(b"\x89PNG")


async def test_input_data_answers_input(gateway_client: Client[Any]) -> None:
    code = "a = input('a? ')\nimport getpass\nb = getpass.getpass('b? ')\nprint(a, b)"
    data = await run(gateway_client, code, input_data=["one", "two"])
    assert data["status"] == "ok"
    assert "one two" in data["stdout"]
    data = await run(gateway_client, "input('again? ')", input_data=[])
    assert data["status"] == "error"
    assert data["error"]["ename"] == "EOFError"


async def test_timeout_interrupts_through_the_gateway_and_keeps_state(
    gateway_client: Client[Any],
) -> None:
    await run(gateway_client, "kept = 'still here'")
    code = "import time\nprint('started', flush=True)\nwhile True: time.sleep(0.05)"
    data = await run(gateway_client, code, timeout=1)
    assert data["status"] == "timeout"
    assert data["stdout"] == "started\n"
    assert data["kernel_restarted"] is False
    assert (await run(gateway_client, "kept"))["result"] == "'still here'"


async def test_restart_keeps_the_kernel_id_and_clears_state(
    gateway_client: Client[Any], replicas: Replicas
) -> None:
    await run(gateway_client, "gone = 1")
    restarted = await call(gateway_client, "restart_kernel")
    assert restarted["action"] == "restarted"
    data = await run(gateway_client, "'gone' in dir()")
    assert data["result"] == "False"
    assert replicas.gateway.kernel_ids() >= {replicas.kernel_id("default")}
    assert len(replicas.gateway.kernel_ids()) == 1


async def test_swallowed_interrupt_gets_the_kernel_restarted(gateway_client: Client[Any]) -> None:
    await run(gateway_client, "lost = 1")
    data = await run(gateway_client, SWALLOWS_INTERRUPTS, timeout=1)
    assert data["status"] == "timeout"
    assert data["kernel_restarted"] is True
    assert (await run(gateway_client, "'lost' in dir()"))["result"] == "False"


async def test_crash_is_reported_then_recovered(gateway_client: Client[Any]) -> None:
    await run(gateway_client, "before = 1")
    data = await run(gateway_client, "import os; os._exit(1)")
    assert data["status"] == "error"
    assert data["error"]["code"] == "KERNEL_DIED"
    assert "died" in data["error"]["evalue"]
    assert data["kernel_restarted"] is True
    assert (await run(gateway_client, "1+1"))["result"] == "2"
    assert (await run(gateway_client, "'before' in dir()"))["result"] == "False"


async def test_kernel_killed_between_calls_is_noticed(
    gateway_client: Client[Any], replicas: Replicas
) -> None:
    await run(gateway_client, "gone = 1")
    (pid,) = replicas.gateway.kernel_processes()
    os.kill(pid, signal.SIGKILL)
    for _ in range(300):  # the gateway polls its kernels every few seconds
        if (await session_listing(gateway_client))["default"]["status"] == "dead":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the killed kernel never showed as dead")
    # The code never reached the dead kernel: it runs on the replacement, and the result
    # says the kernel was replaced, why, and that the variables are gone.
    data = await run(gateway_client, "'gone' in dir()")
    assert (data["status"], data["result"], data["code_ran"]) == ("ok", "False", True)
    assert data["kernel_restarted"] is True
    assert data["kernel_replacement"]["reason"], data
    assert "replaced before this code ran" in data["message"]
    assert "variables were lost" in data["message"]
    after = await run(gateway_client, "3")
    assert (after["result"], after["kernel_restarted"]) == ("3", False)


async def test_completion_and_inspection(gateway_client: Client[Any]) -> None:
    await run(gateway_client, "records_total = 3\ndef area(w, h):\n    'Area of w by h.'")
    done = await call(gateway_client, "code_completion", code="records_")
    assert "records_total" in done["matches"]
    found = await call(gateway_client, "inspect_object", code="area")
    assert "Area of w by h." in found["text"]


async def test_sessions_lifecycle_on_the_gateway(
    gateway_client: Client[Any], replicas: Replicas
) -> None:
    await call(gateway_client, "create_session", session_id="work")
    kernel_id = replicas.kernel_id("work")
    assert replicas.gateway.kernel(kernel_id) is not None
    text = await tool_error(gateway_client, "create_session", {"session_id": "work"})
    assert text.startswith("SESSION_EXISTS:")
    await call(gateway_client, "delete_session", session_id="work")
    assert replicas.gateway.kernel(kernel_id) is None
    text = await tool_error(gateway_client, "delete_session", {"session_id": "work"})
    assert text.startswith("SESSION_NOT_FOUND:")


async def test_a_wrong_token_is_a_gateway_error(replicas: Replicas) -> None:
    client = await replicas.open(gateway_token="not-the-token")
    text = await tool_error(client, "run_python_code", {"code": "1"})
    assert text.startswith("GATEWAY_ERROR:")
    assert "401" in text


async def test_server_kernel_variables_go_with_every_start(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERNEL_PMCP_MARK", "from the server")
    client = await replicas.open()
    data = await run(client, "import os\nos.environ['KERNEL_PMCP_MARK']")
    assert data["result"] == "'from the server'"


async def test_health_of_a_gateway_kernel(gateway_client: Client[Any], replicas: Replicas) -> None:
    await run(gateway_client, "1")
    health = await call(gateway_client, "get_kernel_health")
    assert health["status"] == "idle"
    assert health["pid"] is None
    probe = await call(gateway_client, "check_kernel_responsiveness")
    assert probe["responsive"] is True
    report = await call(gateway_client, "health_check")
    assert replicas.gateway.token not in str(report)
