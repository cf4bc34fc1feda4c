"""Every request kind overlapping on one session, thousands of times: no reply is lost.

Executions, completions, inspections, variable listings, kernel_info probes (the tool's
and the health monitor's, on shell and control), health reads and interrupts all share
one kernel's channels. Each call has a generous bound; a lost reply shows as a call that
hangs past it, or as a kernel restart (which would lose the session's variables).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from tests.helpers import call, run

ROUNDS = 300
BOUND = 60.0


@pytest.mark.timeout(900)  # thousands of calls on a loaded 2-core machine
# A generous interrupt grace: what is tested is that no reply is lost; on a loaded machine
# an interrupted cell can take longer than the suite's usual 2 s to stop, and the
# restart that then follows (covered in tests/server/test_execution.py) would lose the
# variables.
@pytest.mark.parametrize(
    "settings_overrides",
    [{"health_interval": 0.05, "execution_timeout": 60, "interrupt_grace": 30}],
)
async def test_overlapping_requests_never_lose_a_reply(
    client: Client[Any], services: Services
) -> None:
    await run(client, "counter = 0\nimport json")
    done: Counter[str] = Counter()
    problems: list[str] = []

    async def bounded(kind: str, coroutine: Any) -> Any:
        try:
            answer = await asyncio.wait_for(coroutine, BOUND)
        except asyncio.TimeoutError:
            problems.append(f"{kind}: no answer within {BOUND:g} s")
            return None
        done[kind] += 1
        return answer

    async def executions(worker: int) -> None:
        for _ in range(ROUNDS):
            data = await bounded("execute", run(client, "counter += 1\ncounter"))
            if data is None:
                continue
            if data["kernel_restarted"]:
                problems.append(f"execute: the kernel was restarted: {data['message']}")
            elif data["status"] != "ok" and data["error"]["ename"] != "KeyboardInterrupt":
                problems.append(f"execute: {data['status']} {data['error']}")

    async def tool(kind: str, **arguments: Any) -> None:
        for _ in range(ROUNDS):
            result = await bounded(kind, client.call_tool(kind, arguments, raise_on_error=False))
            if result is not None and result.is_error:
                problems.append(f"{kind}: {result.content[0].text}")

    async def interrupts() -> None:
        for _ in range(ROUNDS // 10):
            await bounded("interrupt_kernel", call(client, "interrupt_kernel"))

    await asyncio.gather(
        executions(1),
        executions(2),
        tool("code_completion", code="json.du"),
        tool("inspect_object", code="json.dumps"),
        tool("list_variables"),
        tool("check_kernel_responsiveness", timeout=BOUND),
        tool("get_kernel_health"),
        interrupts(),
    )
    total = sum(done.values())
    print(
        f"overlapping calls answered: {total} {dict(done)}; health rounds {services.health.rounds}"
    )
    assert not problems, Counter(p[:60] for p in problems)
    assert total >= 6 * ROUNDS + ROUNDS // 10
    assert services.sessions.get("default").restart_count == 0
    data = await run(client, "counter")
    assert data["kernel_restarted"] is False
    assert int(data["result"]) >= 1
