"""Core figures of issue 2, measured in one run on this machine.

(a) raw jupyter_client round trip of ``1+1``; (b) a no-op FastMCP tool over HTTP with the
fastmcp client; (c) ``run_python_code("1+1")`` over HTTP with the fastmcp client;
(d) create_session + first ``1+1``; (e) process start to the first correct answer; and the
server's idle RSS. Prints medians and the ratio c / (a + b).

Run: ``.venv/bin/python bench/bench_core.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import psutil
from fastmcp import Client
from jupyter_client.manager import AsyncKernelManager

sys.path.insert(0, str(Path(__file__).parent))
from _common import NOOP_SERVER, ServerProcess, free_port, median_ms, wait_port


async def raw_jupyter(rounds: int) -> float:
    manager = AsyncKernelManager(transport="ipc")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        samples = []
        for _ in range(rounds + 5):
            started = time.perf_counter()
            reply = await client.execute_interactive("1+1", output_hook=lambda _msg: None)
            samples.append(time.perf_counter() - started)
            assert reply["content"]["status"] == "ok"
        return median_ms(samples[5:])
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=True)


async def call_rounds(url: str, tool: str, args: dict[str, object], rounds: int) -> float:
    async with Client(url) as client:
        samples = []
        for _ in range(rounds + 5):
            started = time.perf_counter()
            result = await client.call_tool(tool, args)
            samples.append(time.perf_counter() - started)
            assert not result.is_error
        return median_ms(samples[5:])


def start_noop_server(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", NOOP_SERVER, str(port)])


async def noop_tool(rounds: int) -> float:
    port = free_port()
    process = start_noop_server(port)
    try:
        wait_port(port)
        return await call_rounds(f"http://127.0.0.1:{port}/mcp", "noop", {}, rounds)
    finally:
        process.terminate()
        process.wait(10)


async def run_python_code(server: ServerProcess, rounds: int) -> float:
    return await call_rounds(server.url, "run_python_code", {"code": "1+1"}, rounds)


async def create_and_first(server: ServerProcess, rounds: int) -> float:
    samples = []
    async with Client(server.url) as client:
        for index in range(rounds):
            await asyncio.sleep(1.0)  # let the pool refill: the figure is for a warm pool
            name = f"bench{index}"
            started = time.perf_counter()
            await client.call_tool("create_session", {"session_id": name})
            result = await client.call_tool("run_python_code", {"code": "1+1", "session_id": name})
            samples.append(time.perf_counter() - started)
            assert result.structured_content is not None
            assert result.structured_content["result"] == "2"
            await client.call_tool("delete_session", {"session_id": name})
    return median_ms(samples)


async def first_answer() -> float:
    server = ServerProcess()
    try:
        while True:
            try:
                async with Client(server.url, timeout=30) as client:
                    result = await client.call_tool("run_python_code", {"code": "1+1"})
                    assert result.structured_content is not None
                    if result.structured_content["result"] == "2":
                        return (time.perf_counter() - server.started) * 1000
            except Exception:
                await asyncio.sleep(0.01)
    finally:
        server.stop()


def idle_rss_mb(server: ServerProcess) -> float:
    time.sleep(2.0)
    return psutil.Process(server.process.pid).memory_info().rss / 2**20


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    rounds = parser.parse_args().rounds

    a = await raw_jupyter(rounds)
    b = await noop_tool(rounds)
    server = ServerProcess()
    try:
        wait_port(server.port)
        rss = idle_rss_mb(server)
        c = await run_python_code(server, rounds)
        d = await create_and_first(server, min(rounds, 20))
    finally:
        server.stop()
    starts = [await first_answer() for _ in range(5)]
    e = sorted(starts)[len(starts) // 2]

    print(f"(a) raw jupyter_client 1+1 round trip     median {a:7.2f} ms")
    print(f"(b) no-op FastMCP tool over HTTP          median {b:7.2f} ms")
    print(f"(c) run_python_code('1+1') over HTTP      median {c:7.2f} ms")
    print(f"    ratio c / (a + b)                            {c / (a + b):7.2f}   (target <= 1.3)")
    print(f"(d) create_session + first 1+1            median {d:7.2f} ms  (target <= 50)")
    print(f"(e) process start to first answer         median {e:7.0f} ms  (target <= 1500)")
    print(f"    server RSS idle                              {rss:7.1f} MB  (target <= 100)")


if __name__ == "__main__":
    asyncio.run(main())
