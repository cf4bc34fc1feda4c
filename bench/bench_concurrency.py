"""Issue 12's concurrency figure: ``1+1`` under 32 concurrent clients on 8 sessions, with
completions overlapping, over HTTP against the real server command.

Each client owns one fastmcp ``Client`` (its own HTTP connection) and one of 8 sessions
(4 clients per session); every client alternates ``run_python_code("1+1")`` with a
``code_completion`` on the same session, so shell requests of every kind overlap on each
kernel while the health monitor probes. Prints the errors, p50, p99 and p99/p50 of the
``1+1`` calls, all measured in this run. Target: 0 errors, p99 <= 5x p50.

Run: ``.venv/bin/python bench/bench_concurrency.py [--calls 5000] [--clients 32]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

from fastmcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from _common import ServerProcess, percentiles_ms, wait_port


async def client_loop(
    url: str,
    session_id: str,
    calls: int,
    latencies: list[float],
    errors: Counter[str],
    completion_errors: Counter[str],
) -> None:
    async with Client(url, timeout=120) as client:
        for _ in range(calls):
            completion = asyncio.ensure_future(
                client.call_tool(
                    "code_completion",
                    {"code": "prin", "session_id": session_id},
                    raise_on_error=False,
                )
            )
            started = time.perf_counter()
            result = await client.call_tool(
                "run_python_code", {"code": "1+1", "session_id": session_id}, raise_on_error=False
            )
            latencies.append(time.perf_counter() - started)
            data = result.structured_content or {}
            if result.is_error:
                errors[str(result.content[0].text)[:80]] += 1  # type: ignore[union-attr]
            elif data.get("result") != "2" or data.get("kernel_restarted"):
                errors[f"wrong answer: {data.get('status')} {data.get('message')}"] += 1
            answered = await completion
            if answered.is_error:
                text = str(answered.content[0].text)[:70]  # type: ignore[union-attr]
                completion_errors[text] += 1


async def main(calls: int, clients: int, sessions: int) -> None:
    server = ServerProcess(
        "--toolsets",
        "default,introspection",
        env={"MCP_KERNEL_POOL_SIZE": "0", "MCP_HEALTH_INTERVAL": "1"},
    )
    try:
        wait_port(server.port, timeout=180)
        names = [f"s{i}" for i in range(sessions)]
        async with Client(server.url, timeout=120) as setup:
            for name in names:
                await setup.call_tool("create_session", {"session_id": name})
                await setup.call_tool("run_python_code", {"code": "import os", "session_id": name})
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        completion_errors: Counter[str] = Counter()
        per_client = max(1, -(-calls // clients))  # at least `calls` in all
        started = time.perf_counter()
        await asyncio.gather(
            *(
                client_loop(
                    server.url,
                    names[i % sessions],
                    per_client,
                    latencies,
                    errors,
                    completion_errors,
                )
                for i in range(clients)
            )
        )
        wall = time.perf_counter() - started
        figures = percentiles_ms(latencies)
        ratio = figures["p99"] / figures["p50"] if figures["p50"] else float("inf")
        print(f"1+1 under {clients} clients on {sessions} sessions with completions overlapping")
        print(f"  calls      {len(latencies)} in {wall:.1f} s")
        print(f"  errors     {sum(errors.values())}")
        for text, count in errors.most_common(5):
            print(f"    {count} x {text}")
        print(f"  completion errors {sum(completion_errors.values())}")
        for text, count in completion_errors.most_common(3):
            print(f"    {count} x {text}")
        print(f"  p50        {figures['p50']:.1f} ms")
        print(f"  p99        {figures['p99']:.1f} ms")
        print(f"  p99/p50    {ratio:.2f}  (target <= 5)")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sessions", type=int, default=8)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.clients, arguments.sessions))
