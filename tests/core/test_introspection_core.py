"""IntrospectionService against a busy kernel: SESSION_BUSY, and no late reply mix-ups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from python_mcp_server.core.execution.introspection import IntrospectionConfig, IntrospectionService
from python_mcp_server.errors import SessionBusyError
from python_mcp_server.server.services import Services, build_services
from python_mcp_server.settings import Settings


@pytest.fixture
async def started(workspace: Path, no_kernel_leak: None) -> AsyncIterator[Services]:
    services = build_services(
        Settings(workspace_dir=workspace, kernel_pool_size=0, session_idle_timeout=0)
    )
    await services.start()
    try:
        yield services
    finally:
        await services.aclose()


async def test_busy_session_times_out_with_session_busy_and_late_replies_are_dropped(
    started: Services,
) -> None:
    quick = IntrospectionService(started.sessions, IntrospectionConfig(timeout=0.3))
    session = await started.sessions.create("work")
    await session.execute("first_only_name = 1\nimport json")
    cell = asyncio.create_task(session.execute("import time\ntime.sleep(1.5)"))
    for _ in range(500):
        if session.busy:
            break
        await asyncio.sleep(0.01)
    assert session.busy
    with pytest.raises(SessionBusyError) as caught:
        await quick.complete("first_only_", None, "work")
    assert "interrupt_kernel" in caught.value.message
    with pytest.raises(SessionBusyError):
        await quick.variables("work")
    await cell
    # The kernel now answers the abandoned requests too; the next call must get its own.
    patient = IntrospectionService(started.sessions, IntrospectionConfig(timeout=10))
    for _ in range(3):
        answer = await patient.complete("json.lo", None, "work")
        assert set(answer.matches) == {"load", "loads"}
    listing = await patient.variables("work")
    assert [v.name for v in listing.variables] == ["first_only_name"]
