"""Tasks across replicas: with MCP_REDIS_URL, a task started through one replica is polled,
read and cancelled through another (real gateway, real Redis, the MCP tasks extension);
another deployment on the same Redis never sees it; losing Redis fails task calls with
TASK_STORE_UNAVAILABLE while synchronous calls go on, and tasks work again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from fastmcp_tasks import ToolTask, call_tool_task
from mcp.shared.exceptions import MCPError

from tests.gateway.conftest import Replicas
from tests.helpers import call, free_port, run
from tests.server.test_tasks import COUNTING_CELL, wait_for_status
from tests.services.redis import RedisServer

#: What these tests prove is the shared store, not the gateway: they run on Kernel Gateway
#: only (the gateway behaviours run on both gateways in the other tests/gateway files).
pytestmark = pytest.mark.parametrize("gateway", ["kernel-gateway"], indirect=True)

COMMAND = str(Path(sys.executable).parent / "python-mcp-server")


def on(client: Client[Any], task: ToolTask) -> ToolTask:
    """The same task, asked about through another client (another replica)."""
    return ToolTask(client, "run_python_code", task.create_result)


async def test_a_task_started_through_a_is_polled_and_read_through_b(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    a = await replicas.open(redis_url=redis_server.url)
    b = await replicas.open(redis_url=redis_server.url)
    await run(a, "base = 40")
    code = "import time\nprint('started', flush=True)\ntime.sleep(1)\nbase + 2"
    task = await call_tool_task(a, "run_python_code", {"code": code})
    through_b = on(b, task)
    await wait_for_status(through_b, "running")
    result = await through_b.result()
    assert result.structured_content is not None
    assert result.structured_content["result"] == "42"
    assert result.structured_content["stdout"] == "started\n"
    assert (await task.status()).status == "completed"  # A tells the same

    # Every key lives under this deployment's queue name (gateway namespace + gateway).
    with redis_server.client() as redis:
        keys = [key.decode() for key in redis.keys("*")]
    assert keys
    prefix = f"python-mcp-server:{replicas.namespace}:"
    assert all(key.startswith(prefix) for key in keys), keys


async def test_cancel_through_b_interrupts_the_kernel_and_keeps_variables(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    a = await replicas.open(redis_url=redis_server.url, interrupt_grace=8)
    b = await replicas.open(redis_url=redis_server.url, interrupt_grace=8)
    await run(a, "before = 1")
    task = await call_tool_task(a, "run_python_code", {"code": COUNTING_CELL})
    through_b = on(b, task)
    await wait_for_status(through_b, "line 3")
    await through_b.cancel()
    assert (await through_b.wait(timeout=30)).status == "cancelled"
    assert (await task.status()).status == "cancelled"
    after = await run(a, "(before, kept, i > 0)")
    assert after["status"] == "ok", after["error"]
    assert after["result"] == "(1, 'set before the cancel', True)"
    assert after["kernel_restarted"] is False
    again = await run(b, "before + 1")
    assert again["result"] == "2"


async def test_another_deployment_on_the_same_redis_does_not_see_the_task(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    a = await replicas.open(redis_url=redis_server.url)
    other = await replicas.open(redis_url=redis_server.url, gateway_namespace="elsewhere")
    task = await call_tool_task(a, "run_python_code", {"code": "6 * 7"})
    with pytest.raises(MCPError, match="not found"):
        await on(other, task).status()
    result = await task.result()
    assert result.structured_content is not None
    assert result.structured_content["result"] == "42"


async def task_store_error(call: Any) -> str:
    """The message of the error a task call ends with."""
    with anyio.fail_after(30), pytest.raises(MCPError) as caught:  # fails, never hangs
        await call
    assert caught.value.error.data == {"code": "TASK_STORE_UNAVAILABLE"}, caught.value.error
    return str(caught.value)


async def test_losing_redis_fails_task_calls_until_it_is_back(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    a = await replicas.open(redis_url=redis_server.url)
    b = await replicas.open(redis_url=redis_server.url)
    task = await call_tool_task(a, "run_python_code", {"code": "kept = 'yes'\n1"})
    await task.result()

    redis_server.stop()
    text = await task_store_error(call_tool_task(a, "run_python_code", {"code": "2"}))
    assert text.startswith("TASK_STORE_UNAVAILABLE: "), text
    assert redis_server.password not in text
    assert f"127.0.0.1:{redis_server.port}" in text
    text = await task_store_error(on(b, task).status())
    assert "TASK_STORE_UNAVAILABLE: " in text, text
    text = await task_store_error(on(b, task).cancel())
    assert "TASK_STORE_UNAVAILABLE: " in text, text
    # Ordinary (synchronous) calls never needed the store.
    assert (await run(b, "kept"))["result"] == "'yes'"
    assert (await run(a, "kept + '!'"))["result"] == "'yes!'"

    redis_server.start()  # same port, empty: earlier tasks are gone, new ones work
    with anyio.fail_after(60):
        again = await call_tool_task(b, "run_python_code", {"code": "kept * 2"})
        result = await on(a, again).result()
    assert result.structured_content is not None
    assert result.structured_content["result"] == "'yesyes'"


ALICE = "alice-task-token-0123456789"
BOB = "bob-task-token-0123456789ab"


class ServerProcess:
    """The python-mcp-server command on a free port: gateway, Redis, two principals."""

    def __init__(self, replicas: Replicas, redis: RedisServer, state: Path, **extra: str) -> None:
        self.port = free_port()
        tokens = state.parent / f"{state.name}.tokens"
        tokens.write_text(f"alice {ALICE}\nbob {BOB}\n")
        env = {
            **os.environ,
            "MCP_GATEWAY_TOKEN": replicas.gateway.token,
            "MCP_GATEWAY_NAMESPACE": replicas.namespace,
            "MCP_REDIS_URL": redis.url,
            "MCP_AUTH_TOKENS_FILE": str(tokens),
            "FASTMCP_STATELESS_HTTP": "true",
            **extra,
        }
        self.log = state.parent / f"{state.name}.log"
        self.process = subprocess.Popen(
            [
                COMMAND,
                *("--port", str(self.port)),
                *("--workspace-dir", str(replicas.gateway.workspace)),
                *("--state-dir", str(state)),
                *("--gateway-url", replicas.gateway.url),
                *("--log-level", "WARNING"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    async def connect(self, token: str) -> Client[Any]:
        with anyio.fail_after(180):  # a loaded machine takes its time to import and start
            while True:
                client: Client[Any] = Client(self.url, auth=token)
                try:
                    await client.__aenter__()
                    return client
                except Exception:
                    assert self.process.poll() is None, self.log.read_text()[-3000:]
                    await asyncio.sleep(0.1)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


async def test_a_task_belongs_to_its_principal_on_every_replica(
    replicas: Replicas, redis_server: RedisServer, tmp_path: Path
) -> None:
    servers = [ServerProcess(replicas, redis_server, tmp_path / f"state-{n}") for n in (0, 1)]
    clients: list[Client[Any]] = []
    try:
        alice_a = await servers[0].connect(ALICE)
        clients.append(alice_a)
        alice_b = await servers[1].connect(ALICE)
        clients.append(alice_b)
        bob_b = await servers[1].connect(BOB)
        clients.append(bob_b)
        code = "import time\ntime.sleep(1)\n'alice ' + str(6 * 7)"
        task = await call_tool_task(alice_a, "run_python_code", {"code": code})
        with pytest.raises(MCPError, match="not found"):
            await on(bob_b, task).status()
        with pytest.raises(MCPError, match="not found"):
            await on(bob_b, task).cancel()
        result = await on(alice_b, task).result()
        assert result.structured_content is not None
        assert result.structured_content["result"] == "'alice 42'"
        with pytest.raises(MCPError, match="not found"):
            await on(bob_b, task).result()
        await call(alice_b, "delete_session", session_id="default")
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
        codes = [server.stop() for server in servers]
    assert codes == [0, 0], f"servers exited with {codes}"


async def test_a_task_whose_replica_is_killed_is_reported_lost_never_run_again(
    replicas: Replicas, redis_server: RedisServer, tmp_path: Path
) -> None:
    lost_after = {"MCP_TASK_LOST_AFTER": "3"}
    first = ServerProcess(replicas, redis_server, tmp_path / "state-a", **lost_after)
    second: ServerProcess | None = None
    clients: list[Client[Any]] = []
    try:
        alice_a = await first.connect(ALICE)
        clients.append(alice_a)
        code = (
            "runs = globals().get('runs', 0) + 1\n"
            "import time\n"
            "print('running', flush=True)\n"
            "while True: time.sleep(0.05)\n"
        )
        # Only A runs a worker yet, so A's worker runs the task.
        arguments = {"code": code, "timeout": 900}  # runs until interrupted
        task = await call_tool_task(alice_a, "run_python_code", arguments)
        await wait_for_status(task, "running", deadline=120)
        second = ServerProcess(replicas, redis_server, tmp_path / "state-b", **lost_after)
        alice_b = await second.connect(ALICE)
        clients.append(alice_b)

        first.process.kill()  # SIGKILL mid-task
        first.process.wait()
        with anyio.fail_after(120), pytest.raises(ToolError, match=r"^TASK_LOST: ") as lost:
            await on(alice_b, task).result()
        assert "was not run again" in str(lost.value)

        # The cell A started still runs on the gateway, once: interrupt it and look.
        interrupted = await call(alice_b, "interrupt_kernel")
        assert interrupted["action"] == "interrupted", interrupted
        assert (await run(alice_b, "runs"))["result"] == "1"
        await call(alice_b, "delete_session", session_id="default")
    finally:
        for client in reversed(clients):
            with contextlib.suppress(Exception):  # A's client lost its server on purpose
                await client.__aexit__(None, None, None)
        if first.process.poll() is None:
            first.stop()
        code_b = second.stop() if second is not None else 0
    assert code_b == 0, f"replica B exited with {code_b}"
