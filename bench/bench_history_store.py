"""History and audit in PostgreSQL stay off the response path: ``1+1`` with and without.

Three ``python-mcp-server`` commands run side by side (HTTP on loopback, real kernels), and
their calls are interleaved round by round, in a random order, so machine load hits all of
them alike:

- baseline: history and audit off (``MCP_MAX_HISTORY=0``, ``MCP_MAX_AUDIT=0``);
- SQLite: the default, history and audit in the state folder;
- PostgreSQL: ``MCP_DATABASE_URL`` set (history and audit queued to PostgreSQL).

Each figure is the median of ``run_python_code("1+1")`` with its ratio to the baseline
(target for PostgreSQL: <= 1.05x), then the median of the per-round ratios PostgreSQL /
baseline (each pair measured moments apart, so less swayed by load that comes and goes).
PostgreSQL is the one in ``MCP_DATABASE_URL`` if set, else a throwaway cluster started like
the tests' (``tests/services/postgres.py``).

Run: ``.venv/bin/python bench/bench_history_store.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastmcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.services
from _common import ServerProcess, median_ms, percentiles_ms, structured, timed, wait_port


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    if os.environ.get("MCP_DATABASE_URL"):
        yield os.environ["MCP_DATABASE_URL"]
        return
    from tests.services.postgres import PostgresServer

    server = PostgresServer.create()
    try:
        yield server.create_database("bench")
    finally:
        server.close()


BASELINE = "history off (baseline)"
POSTGRES = "history + audit in PostgreSQL"


async def measure(rounds: int) -> tuple[dict[str, list[float]], int]:
    """Samples (seconds) per configuration, and the rows PostgreSQL's history holds after.

    Other benchmarks (``bench_scaleout.py``) may call this for the same-run figure."""
    configs: dict[str, dict[str, str]] = {
        BASELINE: {"MCP_MAX_HISTORY": "0", "MCP_MAX_AUDIT": "0"},
        "history + audit in SQLite": {},
    }
    common = {"MCP_KERNEL_POOL_SIZE": "1", "MCP_KERNEL_PRELOAD": "none"}
    with postgres_url() as url:
        configs[POSTGRES] = {"MCP_DATABASE_URL": url}
        servers = {
            name: ServerProcess("--toolsets", "default,history", env={**common, **env})
            for name, env in configs.items()
        }
        try:
            for process in servers.values():
                wait_port(process.port, 120)
            async with contextlib.AsyncExitStack() as stack:
                clients = {
                    name: await stack.enter_async_context(Client(process.url))
                    for name, process in servers.items()
                }
                samples = await interleaved(clients, rounds)
                listing = structured(
                    await clients[POSTGRES].call_tool("get_execution_history", {"limit": 1})
                )
        finally:
            for process in servers.values():
                process.stop()
    return samples, int(listing["total"])


async def main(rounds: int) -> None:
    samples, rows = await measure(rounds)
    baseline = median_ms(samples[BASELINE])
    print(f"run_python_code('1+1') over HTTP, {rounds} rounds in random order, median (p95):")
    for name, values in samples.items():
        median = median_ms(values)
        p95 = percentiles_ms(values)["p95"]
        print(f"  {name:32s} {median:7.2f} ms  (p95 {p95:6.1f})  {median / baseline:5.3f}x")
    paired = statistics.median(
        pg / base for pg, base in zip(samples[POSTGRES], samples[BASELINE], strict=True)
    )
    print(f"  PostgreSQL / baseline, median of per-round ratios: {paired:5.3f}x")
    print(f"  rows in PostgreSQL's history: {rows} (every call recorded)")


async def interleaved(clients: dict[str, Client[Any]], rounds: int) -> dict[str, list[float]]:
    """Each round calls every server once, in a random order; 5 warm-up rounds first."""
    samples: dict[str, list[float]] = {name: [] for name in clients}
    order = list(clients)
    for round_index in range(rounds + 5):
        random.shuffle(order)
        for name in order:
            seconds = await timed(lambda name=name: one(clients[name]))
            if round_index >= 5:
                samples[name].append(seconds)
    return samples


async def one(client: Client[Any]) -> None:
    result = await client.call_tool("run_python_code", {"code": "1+1"})
    assert structured(result)["result"] == "2"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
