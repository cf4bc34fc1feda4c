"""The kernel sandbox's cost, measured in one run: without it (MCP_SANDBOX=none) and with it.

The sandbox is the full one the defaults give: bubblewrap namespaces and mounts, the seccomp
filter, per-kernel cgroups (memory and pids, where the server may create them) and, under a
root server, the drop to the unprivileged kernel user; the first lines say which of these
held in this run.
(a) kernel start: launch through the launcher until the kernel answers (``KernelFactory.start``),
    no pool; (b) round trip: ``run_python_code("1+1")`` over streamable HTTP against the real
    command. Prints medians, the start overhead in ms and the round-trip ratio.
Targets: round trip <= 1.05x, start overhead <= 40 ms.

Run: ``.venv/bin/python bench/bench_sandbox.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
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
    """Alternate starts between an unsandboxed and a sandboxed launcher (fair under noise)."""
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
            for mode in MODES:
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


async def main(rounds: int) -> None:
    starts = {mode: median_ms(s) for mode, s in (await kernel_starts(rounds)).items()}
    trips = {mode: median_ms(s) for mode, s in (await round_trips(rounds * 10)).items()}
    print(f"kernel start   none {starts['none']:8.1f} ms   bwrap {starts['bwrap']:8.1f} ms")
    print(f"round trip     none {trips['none']:8.2f} ms   bwrap {trips['bwrap']:8.2f} ms")
    overhead = starts["bwrap"] - starts["none"]
    ratio = trips["bwrap"] / trips["none"]
    print(f"start overhead {overhead:+.1f} ms (target <= 40 ms)")
    print(f"round trip ratio bwrap/none {ratio:.3f}x (target <= 1.05x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    asyncio.run(main(parser.parse_args().rounds))
