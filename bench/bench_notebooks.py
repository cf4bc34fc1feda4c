"""What recording notebooks costs, measured in one run on this machine.

(a) ``run_python_code("1+1")`` through the in-memory fastmcp client with the notebook
recorder in the pipeline (the default), (b) the same server with the recorder taken out;
prints medians and the ratio a / b. Then (c) ``export_notebook`` of a session of N recorded
cells (ipynb and html), against (d) ``get_execution_history`` of the same N executions.

Run: ``.venv/bin/python bench/bench_notebooks.py [--rounds N] [--cells N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastmcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")

from python_mcp_server.server.app import build_server
from python_mcp_server.server.services import build_services
from python_mcp_server.settings import Settings


def settings(workspace: str) -> Settings:
    return Settings(
        workspace_dir=workspace,
        state_dir=f"{workspace}-state",
        toolsets="default,notebooks,history",
        kernel_pool_size=0,
        kernel_preload="none",
        session_idle_timeout=0,
    )


async def timed(client: Client[Any], tool: str, arguments: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    return time.perf_counter() - started


async def round_trips(rounds: int, *, recorder: bool) -> float:
    with tempfile.TemporaryDirectory() as workspace:
        services = build_services(settings(workspace))
        if not recorder:
            hooks = services.execution.hooks
            hooks.remove(services.notebook_recorder)
            services.execution.watchers.clear()
        async with Client(build_server(services.settings, services)) as client:
            samples = [
                await timed(client, "run_python_code", {"code": "1+1"}) for _ in range(rounds + 10)
            ]
    return statistics.median(samples[10:]) * 1000


async def exports(cells: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workspace:
        async with Client(build_server(settings(workspace))) as client:
            for i in range(cells):
                await client.call_tool("run_python_code", {"code": f"print({i})\n{i} * 2"})
            figures = {}
            for fmt in ("ipynb", "html"):
                arguments = {"session_id": "default", "format": fmt}
                await timed(client, "export_notebook", arguments)  # warm (nbconvert import)
                figures[fmt] = statistics.median(
                    [await timed(client, "export_notebook", arguments) for _ in range(5)]
                )
            history = {"limit": cells, "session_id": "default"}
            figures["history"] = statistics.median(
                [await timed(client, "get_execution_history", history) for _ in range(5)]
            )
    return {name: value * 1000 for name, value in figures.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--cells", type=int, default=100)
    args = parser.parse_args()
    with_recorder = await round_trips(args.rounds, recorder=True)
    without = await round_trips(args.rounds, recorder=False)
    print(f"1+1 with the notebook recorder:    {with_recorder:7.2f} ms (median of {args.rounds})")
    print(f"1+1 without it:                    {without:7.2f} ms")
    print(f"ratio:                             {with_recorder / without:7.3f}x")
    figures = await exports(args.cells)
    print(f"export_notebook ipynb, {args.cells} cells: {figures['ipynb']:7.1f} ms")
    print(f"export_notebook html, {args.cells} cells:  {figures['html']:7.1f} ms")
    print(f"get_execution_history, {args.cells} rows:  {figures['history']:7.1f} ms")
    print(f"ipynb export / history query:      {figures['ipynb'] / figures['history']:7.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
