"""restart_kernel(preserve_state=True) and automatic snapshots, real kernels."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from tests.helpers import call, run, wait_for_new_kernel, wait_gone

STATE = """
import socket
import numpy as np
import pandas as pd
frame = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]})
counter = 7
def doubled():
    return counter * 2
class Box:
    def __init__(self, v):
        self.v = v
box = Box([1, 2])
numbers = (i for i in range(3))
conn = socket.socket()
"""


async def restart(client: Client[Any], **arguments: Any) -> dict[str, Any]:
    return await call(client, "restart_kernel", **arguments)


async def test_preserve_state_keeps_picklable_and_reports_the_rest(
    client: Client[Any], services: Services
) -> None:
    await run(client, STATE)
    old_pid = services.sessions.get("default").kernel_pid
    done = await restart(client, preserve_state=True)
    preserved = done["preserved_state"]
    assert preserved["source"] == "kernel"
    assert set(preserved["kept"]) == {
        "frame",
        "counter",
        "doubled",
        "Box",
        "box",
        "np",
        "pd",
        "socket",
    }
    reasons = {item["name"]: item["reason"] for item in preserved["not_kept"]}
    assert set(reasons) == {"numbers", "conn"}
    assert "generator" in reasons["numbers"]
    assert "socket" in reasons["conn"]
    assert preserved["size_bytes"] > 0
    assert "2 could not be kept" in done["message"]
    assert not wait_gone({old_pid})
    assert services.sessions.get("default").kernel_pid != old_pid
    check = await run(
        client,
        "assert frame.equals(pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [3.5, 19.0]}))\n"
        "counter = 8\n"
        "(doubled(), box.v, type(box).__name__, 'numbers' in dir(), 'conn' in dir())",
    )
    assert check["status"] == "ok", check
    # the restored function sees the session's live globals
    assert check["result"] == "(16, [1, 2], 'Box', False, False)"


async def test_plain_restart_still_clears(client: Client[Any]) -> None:
    await run(client, "kept = 1")
    done = await restart(client)
    assert done["preserved_state"] is None
    assert (await run(client, "'kept' in dir()"))["result"] == "False"


@pytest.mark.parametrize("settings_overrides", [{"snapshot_max_mb": 1}])
async def test_snapshot_is_size_bounded(client: Client[Any]) -> None:
    await run(client, "import numpy as np\nsmall = np.ones(10)\nhuge = np.ones(300_000)")
    preserved = (await restart(client, preserve_state=True))["preserved_state"]
    assert "small" in preserved["kept"]
    reasons = {item["name"]: item["reason"] for item in preserved["not_kept"]}
    assert reasons["huge"].startswith("too large for the snapshot")
    assert preserved["size_bytes"] <= 1024 * 1024


@pytest.mark.parametrize("settings_overrides", [{"auto_snapshot": True}])
async def test_auto_snapshot_brings_a_crashed_kernel_back(client: Client[Any]) -> None:
    await run(client, "import pandas as pd\nframe = pd.DataFrame({'a': [1, 2, 3]})\ntotal = 6")
    await run(client, "total = total + 1")
    crash = await run(client, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert crash["status"] == "error"
    assert crash["error"]["code"] == "KERNEL_DIED"
    assert crash["kernel_restarted"] is True
    assert set(crash["restored_variables"]) >= {"frame", "total", "pd"}
    assert "restored" in crash["message"]
    after = await run(client, "(int(frame['a'].sum()), total)")
    assert after["result"] == "(6, 7)"


@pytest.mark.parametrize("settings_overrides", [{"auto_snapshot": True, "health_interval": 0.5}])
async def test_auto_snapshot_restores_after_the_monitor_restarts(
    client: Client[Any], services: Services
) -> None:
    await run(client, "kept_value = [1, 2, 3]")
    session = services.sessions.get("default")
    # the snapshot is taken in the background after the result went back: wait for it
    async with session.exclusive():
        snapshot = services.snapshots.latest(session)
    assert snapshot is not None
    assert "kept_value" in snapshot.kept
    old_pid = session.kernel_pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    await wait_for_new_kernel(session, old_pid)
    # the replacement is installed before the snapshot loads; the next call queues behind it
    assert (await run(client, "kept_value"))["result"] == "[1, 2, 3]"


async def test_without_auto_snapshot_a_crash_loses_variables(client: Client[Any]) -> None:
    await run(client, "lost = 1")
    crash = await run(client, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert crash["kernel_restarted"] is True
    assert crash["restored_variables"] is None
    assert (await run(client, "'lost' in dir()"))["result"] == "False"


@pytest.mark.parametrize("settings_overrides", [{"auto_snapshot": True}])
async def test_a_plain_restart_is_not_undone_by_a_later_crash(client: Client[Any]) -> None:
    await run(client, "before_restart = 1")
    await restart(client)
    crash = await run(client, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert crash["kernel_restarted"] is True
    assert crash["restored_variables"] is None
    assert (await run(client, "'before_restart' in dir()"))["result"] == "False"
