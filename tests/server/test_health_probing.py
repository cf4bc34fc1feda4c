"""The health monitor probes only what needs probing: idle kernels cost no round trips."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.core.observability.probing import ProbePolicy, process_stuck
from python_mcp_server.server.services import Services
from tests.helpers import call, run

FAST_ROUNDS = {"health_interval": 0.05, "sandbox": "none"}


async def wait_rounds(services: Services, count: int) -> None:
    target = services.health.rounds + count
    for _ in range(2000):
        if services.health.rounds >= target:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the health monitor stopped running rounds")


def test_policy_probes_when_due_stuck_or_unanswered() -> None:
    policy = ProbePolicy(probe_every=60.0)
    own = os.getpid()  # running: not stuck
    assert not policy.due(pid=own, last_used=100.0, last_probe=None, unanswered=False, now=159.0)
    assert policy.due(pid=own, last_used=100.0, last_probe=None, unanswered=False, now=160.0)
    assert not policy.due(pid=own, last_used=0.0, last_probe=130.0, unanswered=False, now=160.0)
    assert policy.due(pid=own, last_used=100.0, last_probe=150.0, unanswered=True, now=151.0)
    assert not process_stuck(own)


@pytest.mark.parametrize("settings_overrides", [FAST_ROUNDS])
async def test_idle_kernels_are_not_probed_and_a_stopped_one_is(
    client: Client[Any], services: Services
) -> None:
    for name in ("a", "b"):
        await call(client, "create_session", session_id=name)
        await run(client, "1", session_id=name)
    await wait_rounds(services, 20)
    for name in ("a", "b"):
        health = await call(client, "get_kernel_health", session_id=name)
        assert health["last_check"] is None  # twenty rounds, no probe: it just answered
        assert health["status"] == "idle"
    stopped = services.sessions.get("b").kernel_pid
    assert stopped is not None
    os.kill(stopped, signal.SIGSTOP)
    try:
        for _ in range(400):
            health = await call(client, "get_kernel_health", session_id="b")
            if health["responsive"] is False:
                break
            await asyncio.sleep(0.05)
        assert health["responsive"] is False  # probed at once, and it could not answer
        assert (await call(client, "get_kernel_health", session_id="a"))["last_check"] is None
    finally:
        os.kill(stopped, signal.SIGCONT)
