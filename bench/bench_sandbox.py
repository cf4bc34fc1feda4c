"""The kernel sandbox's cost, measured in one run: without it (MCP_SANDBOX=none) and with it.

The sandbox is the full one the defaults give: bubblewrap namespaces and mounts, the seccomp
filter, per-kernel cgroups (memory and pids, where the server may create them) and, under a
root server, the drop to the unprivileged kernel user; the first lines say which of these
held in this run.
(a) kernel start: launch through the launcher until the kernel answers (``KernelFactory.start``),
    no pool; (b) round trip: ``run_python_code("1+1")`` over streamable HTTP against the real
    command. Prints medians, the start overhead in ms (the median of each round's sandboxed
    minus unsandboxed start: robust to the load drifting during the run, unlike the difference
    of the two medians, also printed) and the round-trip ratio, with the load average at the
    start and end of each part (on a shared machine the figures move with it).
Targets: round trip <= 1.05x, start overhead <= 40 ms.

Run: ``.venv/bin/python bench/bench_sandbox.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastmcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from _common import ServerProcess, median_ms, wait_port
from python_mcp_server.server.services import build_services
from python_mcp_server.settings import Settings

MODES = ("none", "bwrap")


async def kernel_starts(rounds: int) -> dict[str, list[float]]:
    """Alternate starts between an unsandboxed and a sandboxed launcher (fair under noise),
    each mode first in every other round."""
    folder = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    services = {}
    for mode in MODES:
        # The same kernel either way: no preload and no template fork (a sandboxed kernel
        # cannot be forked from a template), so the difference is the sandbox alone.
        settings = Settings(
            workspace_dir=folder / mode,
            kernel_pool_size=0,
            session_idle_timeout=0,
            sandbox=mode,
            kernel_preload="none",
            kernel_fork=False,
        )
        services[mode] = build_services(settings)
        assert services[mode].limits.sandbox == mode
        limits = services[mode].limits
        print(
            f"{mode:5} kernel user: {limits.kernel_user}; seccomp: {limits.seccomp}; "
            f"memory limit by: {limits.memory_limit_by}; processes by: {limits.process_limit_by}"
        )
        await services[mode].start()
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for index in range(rounds + 1):
            for mode in MODES if index % 2 else MODES[::-1]:  # each goes first half the time
                started = time.perf_counter()
                client = await services[mode].sessions.factory.start(None, "bench")
                elapsed = time.perf_counter() - started
                await client.close(kill=True)
                if index:  # the first start warms the page cache
                    samples[mode].append(elapsed)
    finally:
        for service in services.values():
            await service.aclose()
        shutil.rmtree(folder, ignore_errors=True)
    return samples


async def round_trips(rounds: int) -> dict[str, list[float]]:
    """Alternate run_python_code("1+1") between two real servers, one per mode."""
    servers = {
        mode: ServerProcess(
            env={
                "MCP_SANDBOX": mode,
                "MCP_KERNEL_POOL_SIZE": "1",
                "MCP_KERNEL_PRELOAD": "none",
                "MCP_KERNEL_FORK": "false",
            }
        )
        for mode in MODES
    }
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        for server in servers.values():
            wait_port(server.port, timeout=120)
        async with (
            Client(servers["none"].url, timeout=60) as plain,
            Client(servers["bwrap"].url, timeout=60) as sandboxed,
        ):
            clients = {"none": plain, "bwrap": sandboxed}
            for index in range(rounds + 5):
                for mode in MODES:
                    started = time.perf_counter()
                    result = await clients[mode].call_tool("run_python_code", {"code": "1+1"})
                    elapsed = time.perf_counter() - started
                    assert result.structured_content is not None
                    assert result.structured_content["result"] == "2"
                    if index >= 5:
                        samples[mode].append(elapsed)
    finally:
        for server in servers.values():
            server.stop()
    return samples


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


async def main(rounds: int) -> None:
    print(f"kernel starts: {rounds} rounds, {load()}")
    start_samples = await kernel_starts(rounds)
    print(f"round trips: {rounds * 10} rounds, {load()}")
    trip_samples = await round_trips(rounds * 10)
    print(f"done, {load()}")
    starts = {mode: median_ms(s) for mode, s in start_samples.items()}
    trips = {mode: median_ms(s) for mode, s in trip_samples.items()}
    print(f"kernel start   none {starts['none']:8.1f} ms   bwrap {starts['bwrap']:8.1f} ms")
    print(f"round trip     none {trips['none']:8.2f} ms   bwrap {trips['bwrap']:8.2f} ms")
    paired = statistics.median(
        (sandboxed - plain) * 1000
        for plain, sandboxed in zip(start_samples["none"], start_samples["bwrap"], strict=True)
    )
    ratio = trips["bwrap"] / trips["none"]
    print(f"start overhead {paired:+.1f} ms (median of paired rounds; target <= 40 ms)")
    print(f"  difference of the medians {starts['bwrap'] - starts['none']:+.1f} ms")
    print(f"round trip ratio bwrap/none {ratio:.3f}x (target <= 1.05x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    asyncio.run(main(parser.parse_args().rounds))
