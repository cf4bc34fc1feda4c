"""Two replicas reaching for one new session at the same moment get exactly one kernel.

The gateway itself cannot settle this: two starts of one kernel id that overlap both
launch a process, and the later one silently replaces the earlier in the gateway's map
(its process runs on, unreachable, with whatever one replica already ran in it). The
session registry's claim (a row in the PostgreSQL the replicas share) decides which
replica starts the kernel; the other attaches, or is told SESSION_EXISTS when it asked to
create.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from fastmcp import Client

from tests.gateway.conftest import Replicas
from tests.helpers import call, run

ROUNDS = 3


async def create_result(client: Client[Any], session_id: str) -> str:
    """``created``, or the error code the call failed with."""
    result = await client.call_tool(
        "create_session", {"session_id": session_id}, raise_on_error=False
    )
    if result.is_error:
        text = result.content[0].text  # type: ignore[union-attr]
        return str(text).split(":", 1)[0]
    assert result.structured_content is not None
    return str(result.structured_content["action"])


def assert_one_kernel(replicas: Replicas, before: set[int], session_ids: list[str]) -> None:
    """One kernel per session on the gateway, and no process beyond those."""
    kernels = replicas.gateway.kernel_ids()
    wanted = {replicas.kernel_id(name) for name in session_ids}
    assert wanted <= kernels
    processes = replicas.gateway.kernel_processes() - before
    assert len(processes) == len(session_ids), (
        f"{len(processes)} kernel processes for {len(session_ids)} session(s): a second "
        "start of one session's kernel left a process the gateway no longer knows"
    )


async def test_creating_one_session_id_at_once_on_two_replicas(
    replicas: Replicas, postgres_url: str
) -> None:
    a = await replicas.open(database_url=postgres_url)
    b = await replicas.open(database_url=postgres_url)
    before = replicas.gateway.kernel_processes()
    names = [f"race-{n}" for n in range(ROUNDS)]
    for name in names:
        outcomes = await asyncio.gather(create_result(a, name), create_result(b, name))
        assert sorted(outcomes) == ["SESSION_EXISTS", "created"], outcomes
    assert_one_kernel(replicas, before, names)
    for name in names:
        await run(a, f"mark = {name!r}", session_id=name)
        assert (await run(b, "mark", session_id=name))["result"] == repr(name)
    for name in names:
        await call(b, "delete_session", session_id=name)
    assert not {replicas.kernel_id(n) for n in names} & replicas.gateway.kernel_ids()


async def test_running_code_in_a_brand_new_default_session_on_two_replicas(
    replicas: Replicas, postgres_url: str
) -> None:
    a = await replicas.open(database_url=postgres_url)
    b = await replicas.open(database_url=postgres_url)
    before = replicas.gateway.kernel_processes()
    first, second = await asyncio.gather(run(a, "from_a = 1"), run(b, "from_b = 2"))
    assert (first["status"], second["status"]) == ("ok", "ok"), (first, second)
    assert_one_kernel(replicas, before, ["default"])
    both = "sorted(n for n in ('from_a', 'from_b') if n in globals())"
    assert (await run(a, both))["result"] == "['from_a', 'from_b']"
    assert (await run(b, both))["result"] == "['from_a', 'from_b']"


async def test_a_kernel_the_gateway_gave_up_is_started_anew_by_one_replica(
    replicas: Replicas, postgres_url: str
) -> None:
    # No health monitor replacing the kernel meanwhile: the two calls below find it gone.
    a = await replicas.open(database_url=postgres_url, health_interval=3600)
    b = await replicas.open(database_url=postgres_url, health_interval=3600)
    before = replicas.gateway.kernel_processes()
    await call(a, "create_session", session_id="fragile")
    await run(a, "old = 1", session_id="fragile")
    assert (await run(b, "old", session_id="fragile"))["result"] == "1"  # both attached
    # Its process dies each time the gateway restarts it, until the gateway gives up and
    # forgets the kernel id (jupyter_client's restart limit).
    kernel_id = replicas.kernel_id("fragile")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while replicas.gateway.kernel(kernel_id) is not None:
        assert loop.time() < deadline, "the gateway never gave the kernel up"
        for pid in replicas.gateway.kernel_processes() - before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
    first, second = await asyncio.gather(
        run(a, "from_a = 1", session_id="fragile"), run(b, "from_b = 2", session_id="fragile")
    )
    assert (first["status"], second["status"]) == ("ok", "ok"), (first, second)
    assert_one_kernel(replicas, before, ["fragile"])
    both = "sorted(n for n in ('old', 'from_a', 'from_b') if n in globals())"
    assert (await run(a, both, session_id="fragile"))["result"] == "['from_a', 'from_b']"
    assert (await run(b, both, session_id="fragile"))["result"] == "['from_a', 'from_b']"
