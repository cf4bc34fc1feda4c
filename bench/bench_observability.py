"""Costs of issue 5 (history, audit, snapshots, introspection, health), measured in one run.

Every figure goes through the in-memory fastmcp client against real kernels, so they are
comparable with each other: the baseline is ``run_python_code("1+1")`` on a server with
history off (MCP_MAX_HISTORY=0); every other figure is printed with its ratio to it.

Run: ``.venv/bin/python bench/bench_observability.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")

from fastmcp import Client

from python_mcp_server.server.app import build_server
from python_mcp_server.server.services import build_services
from python_mcp_server.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_ms

FRAME = (
    "import numpy as np, pandas as pd\n"
    "frame = pd.DataFrame(np.random.rand(100_000, 4), columns=list('abcd'))"
)


async def timed(rounds: int, step: Callable[[], Awaitable[Any]]) -> float:
    samples = []
    for _ in range(rounds + 3):
        started = time.perf_counter()
        await step()
        samples.append(time.perf_counter() - started)
    return median_ms(samples[3:])


async def with_server(
    overrides: dict[str, Any], body: Callable[[Client[Any], Any], Awaitable[dict[str, float]]]
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-obs-") as folder:
        settings = Settings(
            workspace_dir=Path(folder),
            session_idle_timeout=0,
            kernel_pool_size=1,
            log_level="WARNING",
            **overrides,
        )
        services = build_services(settings)
        async with Client(build_server(settings, services)) as client:
            await client.call_tool("run_python_code", {"code": "1"})
            return await body(client, services)


def run_code(client: Client[Any], code: str) -> Callable[[], Awaitable[Any]]:
    async def step() -> None:
        result = await client.call_tool("run_python_code", {"code": code})
        assert result.structured_content is not None
        assert result.structured_content["status"] == "ok"

    return step


async def measure(rounds: int) -> dict[str, float]:
    figures: dict[str, float] = {}

    async def baseline(client: Client[Any], _services: Any) -> dict[str, float]:
        return {"run 1+1, history off": await timed(rounds, run_code(client, "1+1"))}

    async def history_on(client: Client[Any], services: Any) -> dict[str, float]:
        run = await timed(rounds, run_code(client, "1+1"))

        async def query() -> None:
            await client.call_tool("get_execution_history", {"limit": 20})

        async def complete() -> None:
            await client.call_tool("code_completion", {"code": "import json\njson.lo"})

        async def inspect() -> None:
            await client.call_tool("inspect_object", {"code": "len"})

        async def variables() -> None:
            await client.call_tool("list_variables", {})

        async def health() -> None:
            await client.call_tool("get_kernel_health", {})

        async def report() -> None:
            await client.call_tool("health_check", {})

        async def monitor_round() -> None:
            await services.health.check_all()

        entry = (await services.history.query(limit=1))[0][0]

        async def record() -> None:
            await services.history.record(entry)

        return {
            "run 1+1, history + audit on (default)": run,
            "get_execution_history(limit=20)": await timed(rounds, query),
            "code_completion": await timed(rounds, complete),
            "inspect_object": await timed(rounds, inspect),
            "list_variables (few names)": await timed(rounds, variables),
            "get_kernel_health": await timed(rounds, health),
            "health_check": await timed(rounds, report),
            "one monitor round, 1 session": await timed(rounds, monitor_round),
            "history write alone (HistoryStore.record)": await timed(rounds, record),
        }

    async def snapshots(client: Client[Any], _services: Any) -> dict[str, float]:
        small = await timed(rounds, run_code(client, "1+1"))
        await run_code(client, FRAME)()
        frame = await timed(rounds, run_code(client, "1+1"))
        return {
            "run 1+1, auto_snapshot, few names": small,
            "run 1+1, auto_snapshot, 3.2 MB DataFrame": frame,
        }

    async def restarts(client: Client[Any], _services: Any) -> dict[str, float]:
        await run_code(client, FRAME)()

        async def plain() -> None:
            await client.call_tool("restart_kernel", {})
            await run_code(client, FRAME)()

        async def preserving() -> None:
            await client.call_tool("restart_kernel", {"preserve_state": True})

        few = max(3, rounds // 4)
        return {
            "restart_kernel + rebuild DataFrame": await timed(few, plain),
            "restart_kernel(preserve_state) with DataFrame": await timed(few, preserving),
        }

    first = await with_server({"max_history": 0}, baseline)
    figures |= await with_server({}, history_on)
    figures |= await with_server({"auto_snapshot": True}, snapshots)
    figures |= await with_server({}, restarts)
    last = await with_server({"max_history": 0}, baseline)
    # the baseline is measured first and last; the smaller median absorbs warm-up noise
    name = "run 1+1, history off"
    return {f"{name} (baseline)": min(first[name], last[name])} | figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.rounds))
    base = figures["run 1+1, history off (baseline)"]
    print(f"{'measure':48} {'median ms':>10} {'x baseline':>11}")
    for name, value in figures.items():
        print(f"{name:48} {value:10.2f} {value / base:11.2f}")


if __name__ == "__main__":
    main()
