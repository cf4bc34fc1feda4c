"""The server's start-up objects are permanent for the garbage collector (infra/collector.py).

The command runs with a ``sitecustomize`` of the test's own on its path (the server's
interpreter imports it at start; kernels get no ``PYTHONPATH``), which records each
collection the server's garbage collector runs and, at exit, what the collector held.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from fastmcp import Client

from tests.e2e.conftest import StartServer

PROBE = textwrap.dedent(
    """
    import atexit, gc, json, os, sys

    if os.path.basename(sys.argv[0]) == "python-mcp-server":
        seen = {"full_before_freeze": 0, "full_after_freeze": 0, "largest_full": 0}

        def record(phase, info):
            if phase != "stop" or info["generation"] != 2:
                return
            if not gc.get_freeze_count():
                seen["full_before_freeze"] += 1
                return
            seen["full_after_freeze"] += 1
            # what a full collection kept: none of the frozen objects is among them
            seen["largest_full"] = max(seen["largest_full"], len(gc.get_objects(2)))

        gc.callbacks.append(record)

        def report():
            seen["frozen"] = gc.get_freeze_count()
            seen["enabled"] = gc.isenabled()
            with open(os.environ["COLLECTOR_PROBE_OUT"], "w") as out:
                json.dump(seen, out)

        atexit.register(report)
    """
)


async def test_start_up_objects_are_frozen_and_never_walked(
    start_server: StartServer, tmp_path: Path
) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    out = tmp_path / "collector.json"
    server = start_server(
        env={"PYTHONPATH": str(probe), "COLLECTOR_PROBE_OUT": str(out), "MCP_SANDBOX": "none"}
    )
    async with Client(server.mcp_url, auth=server.token) as client:
        for index in range(30):  # enough calls for the young generations to turn over
            result = await client.call_tool("run_python_code", {"code": f"{index} + 1"})
            assert result.structured_content is not None
            assert result.structured_content["result"] == str(index + 1)
    assert server.stop() == 0
    seen = json.loads(out.read_text())
    # Start-up ran no automatic full collection; the one before the freeze is settle()'s.
    assert seen["full_before_freeze"] == 1, seen
    assert seen["enabled"] is True
    # FastMCP, pydantic, jupyter_client and the app: well over 50,000 objects, frozen.
    assert seen["frozen"] > 50_000, seen
    # A full collection of the running server walks what was made since, not those.
    assert seen["largest_full"] < seen["frozen"] // 2, seen
