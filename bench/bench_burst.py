"""Bursts of 10 new sessions (or back to back) against their floor, measured in one run.

Ours: ten concurrent ``create_session`` + ``run_python_code("1+1")`` pairs over
streamable HTTP against the ``python-mcp-server`` command, each timed from its create to
its answer (as ``bench_start.py`` times them), the pool full before each burst. With
``--size 1`` the sessions come back to back instead (each deleted before the next, the
pool refilling as it can): issue 14's sequential case.

The floor, on the same machine in the same run: ten concurrent pairs of no-op FastMCP
tool calls over HTTP (the two calls' transport) plus a raw ``execute_request`` of ``1+1``
on a kernel of its own started beforehand (``bench_warm.RawKernel``, a plain ipykernel
with the preload imported, as ours has). That is what ten sessions at once cost at least
on this machine: twenty tool calls through one FastMCP process, ten kernel round trips,
and this client, all on the same cores.

Bursts of ours and of the floor alternate, so a load change touches both alike. Besides
the latencies, the CPU each burst cost is read from ``/proc/<pid>/task/*/schedstat``: the
server, its kernels (every process under it), and this client.

Run: ``.venv/bin/python bench/bench_burst.py [--bursts 10] [--size 10] [--config sandbox|fork]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from fastmcp import Client
from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).parent))
from _common import ServerProcess, free_port, percentiles_ms, wait_port
from bench_start import CONFIGS, delete, new_session, pool_state
from bench_warm import RawKernel, cpu_ns, start_noop_server, tree

SIZE = 10
PRELOAD = (
    "import numpy, pandas, matplotlib; matplotlib.use('module://matplotlib_inline.backend_inline')"
)


async def wait_pool_full(client: Client[Any]) -> None:
    for _ in range(600):
        ready, depth = await pool_state(client)
        if ready is None or not depth or ready >= depth:
            return
        await asyncio.sleep(0.1)  # a bounded poll: health_check is the pool's only view


async def floor_one(noop: Client[Any], kernel: RawKernel) -> float:
    started = asyncio.get_running_loop().time()
    await noop.call_tool("noop", {})
    await noop.call_tool("noop", {})
    await kernel.execute("1+1")
    return asyncio.get_running_loop().time() - started


async def floor_burst(noop: Client[Any], kernels: list[RawKernel]) -> list[float]:
    return list(await asyncio.gather(*(floor_one(noop, kernel) for kernel in kernels)))


def start_raw_kernels(size: int) -> tuple[list[KernelManager], list[RawKernel]]:
    managers = []
    for _ in range(size):
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(extra_arguments=["--HistoryManager.enabled=False"])
        managers.append(manager)
    return managers, [RawKernel(m.get_connection_info(session=False)) for m in managers]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--config", default="sandbox", choices=sorted(CONFIGS))
    parser.add_argument("--size", type=int, default=SIZE, help="sessions at once (1: back to back)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    size = args.size
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    server = ServerProcess("--toolsets", "default,diagnostics", env=CONFIGS[args.config])
    noop_port = free_port()
    noop_process = start_noop_server(noop_port)
    managers, kernels = start_raw_kernels(size)
    here = os.getpid()
    figures: dict[str, Any] = {"config": args.config, "size": size}
    try:
        for kernel in kernels:
            await kernel.wait_ready(60)
            await kernel.execute(PRELOAD)
            await kernel.execute("1+1")  # past a fresh kernel's first execute, as our pool
        wait_port(server.port, timeout=120)
        wait_port(noop_port)
        server_pid = server.process.pid
        raw_pids = [pid for m in managers for pid in tree(m.provisioner.pid)]  # type: ignore[union-attr]
        async with (
            Client(server.url, timeout=300) as client,
            Client(f"http://127.0.0.1:{noop_port}/mcp") as noop,
        ):
            await new_session(client, "warmup")
            await delete(client, ["warmup"])
            await floor_burst(noop, kernels)
            ours: list[float] = []
            floor: list[float] = []
            cpu: dict[str, list[int]] = {"server": [], "kernels": [], "client": []}
            floor_cpu: dict[str, list[int]] = {"noop server": [], "kernels": [], "client": []}
            for index in range(args.bursts):
                if size > 1:
                    await wait_pool_full(client)
                kernels_now = tree(server_pid)[1:]
                before = [cpu_ns([server_pid]), cpu_ns(kernels_now), cpu_ns([here])]
                ours += await asyncio.gather(
                    *(new_session(client, f"b{index}-{i}") for i in range(size))
                )
                after = [cpu_ns([server_pid]), cpu_ns(kernels_now), cpu_ns([here])]
                for part, b, a in zip(cpu, before, after, strict=True):
                    cpu[part].append(a - b)
                await delete(client, [f"b{index}-{i}" for i in range(size)])
                before = [cpu_ns([noop_process.pid]), cpu_ns(raw_pids), cpu_ns([here])]
                floor += await floor_burst(noop, kernels)
                after = [cpu_ns([noop_process.pid]), cpu_ns(raw_pids), cpu_ns([here])]
                for part, b, a in zip(floor_cpu, before, after, strict=True):
                    floor_cpu[part].append(a - b)
    finally:
        for kernel in kernels:
            kernel.close()
        for manager in managers:
            manager.shutdown_kernel(now=True)
        noop_process.terminate()
        noop_process.wait(10)
        server.stop()
    figures["ours_ms"] = percentiles_ms(ours)
    figures["floor_ms"] = percentiles_ms(floor)
    figures["ours_cpu_ms_per_burst"] = {
        part: round(sorted(v)[len(v) // 2] / 1e6, 1) for part, v in cpu.items()
    }
    figures["floor_cpu_ms_per_burst"] = {
        part: round(sorted(v)[len(v) // 2] / 1e6, 1) for part, v in floor_cpu.items()
    }
    print(json.dumps(figures))
    for q in ("p50", "p95"):
        ratio = figures["ours_ms"][q] / figures["floor_ms"][q]
        print(
            f"{size} at once {q}: ours {figures['ours_ms'][q]} ms, floor "
            f"{figures['floor_ms'][q]} ms, ratio {ratio:.2f}"
        )
    load = os.getloadavg()
    print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"load": load, **figures}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
