"""Sizing figures for the scale-out topology (docs/deployment.md, "Sizing"), in one run.

Starts what the Kubernetes manifests run, on this machine and on loopback: PostgreSQL
(``tests/services/postgres.py``), Redis (``tests/services/redis.py``), a real Jupyter
Enterprise Gateway 3.3 (``tests/gateway/enterprise_gateway.py``, kernels as local
processes instead of pods; a Kernel Gateway, said in the output, where that fixture or its
venv is missing: ``bench_scaleout.start_gateway``) and a replica (the ``python-mcp-server``
command) on them with ``MCP_DATABASE_URL`` and ``MCP_REDIS_URL``; and, as the baseline, a
single local server (kernels on this machine, default settings). Figures:

- replica: resident memory idle (after /health and a tools/list), then with ``--sessions``
  sessions attached, and the cost of each;
- the gateway: its own resident memory idle and with those kernels;
- per kernel: resident and unique memory of each kernel process the gateway started;
- kernel start: ``create_session`` + the first ``1+1`` through the replica, per session
  (sequential), against the same on the local server;
- ``1+1``: ``run_python_code`` through the replica, medians of ``--rounds`` calls
  interleaved with the local server's;
- PostgreSQL (proportional memory of its processes, the replica's pool connected) and
  Redis (``used_memory_rss``), after the run.

Needs PostgreSQL and Redis (Debian packages) and the gateway venv (made on first use).
Run: ``.venv/bin/python bench/bench_sizing.py [--sessions 8] [--rounds 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

import psutil  # noqa: E402
from fastmcp import Client  # noqa: E402
from fastmcp.client.auth import BearerAuth  # noqa: E402
from tests.gateway.replica_process import BALANCED_TOKEN, ReplicaProcess  # noqa: E402
from tests.services.postgres import PostgresServer  # noqa: E402
from tests.services.redis import RedisServer  # noqa: E402

from _common import ServerProcess, median_ms, wait_port  # noqa: E402
from bench_scaleout import start_gateway  # noqa: E402

MIB = 1024 * 1024
WARMUP = 5


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / MIB


def tree_pss_mib(pid: int) -> float:
    """Proportional memory of a process and its descendants (shared pages split)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.Error, AttributeError):
            continue
    return total / MIB


def kernel_processes(gateway_pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(gateway_pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


async def start_sessions(client: Client[Any], prefix: str, count: int) -> list[float]:
    """Seconds from create_session to the first ``1+1`` answer, per new session."""
    times = []
    for index in range(count):
        started = time.perf_counter()
        await client.call_tool("create_session", {"session_id": f"{prefix}{index}"})
        result = await client.call_tool(
            "run_python_code", {"code": "1+1", "session_id": f"{prefix}{index}"}
        )
        times.append(time.perf_counter() - started)
        assert result.structured_content is not None
        assert result.structured_content["result"] == "2", result.structured_content
    return times


async def round_trips(clients: dict[str, Client[Any]], rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds + WARMUP):
        for name, client in clients.items():
            started = time.perf_counter()
            result = await client.call_tool("run_python_code", {"code": "1+1"})
            samples[name].append(time.perf_counter() - started)
            assert result.structured_content is not None
            assert result.structured_content["result"] == "2"
    return {name: median_ms(values[WARMUP:]) for name, values in samples.items()}


async def measure(sessions: int, rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-sizing-"))
    with contextlib.ExitStack() as stack:  # everything started is stopped, whatever fails
        stack.callback(shutil.rmtree, root, True)
        postgres = PostgresServer.create()
        stack.callback(postgres.close)
        (root / "redis").mkdir()
        redis = RedisServer(_redis_executable(), root / "redis")
        redis.start()
        stack.callback(redis.stop)
        gateway, kind = start_gateway(root, "enterprise")
        stack.callback(gateway.stop)
        print(f"gateway: {kind}")
        replica = ReplicaProcess(
            gateway,
            "bench-sizing",
            root / "replica-state",
            {"MCP_DATABASE_URL": postgres.url, "MCP_REDIS_URL": redis.url},
        )
        stack.callback(replica.stop)
        replica.start()
        local = ServerProcess()
        stack.callback(local.stop)
        wait_port(local.port, 120)
        figures = await measure_running(replica, gateway.process.pid, local, sessions, rounds)
        pid = postgres.postmaster_pid
        figures["postgres"] = tree_pss_mib(pid) if pid else float("nan")
        figures["redis"] = int(redis.client().info("memory")["used_memory_rss"]) / MIB
    report(figures, sessions, rounds)


async def measure_running(
    replica: ReplicaProcess, gateway_pid: int, local: ServerProcess, sessions: int, rounds: int
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    url = f"http://{replica.address}/mcp"
    async with Client(url, auth=BearerAuth(BALANCED_TOKEN)) as remote, Client(local.url) as near:
        await remote.list_tools()
        await near.list_tools()
        figures["replica_idle"] = rss_mib(replica.pid)
        figures["gateway_idle"] = rss_mib(gateway_pid)
        figures["start_remote"] = await start_sessions(remote, "r", sessions)
        figures["start_local"] = await start_sessions(near, "l", sessions)
        figures["replica_busy"] = rss_mib(replica.pid)
        figures["gateway_busy"] = rss_mib(gateway_pid)
        kernels = kernel_processes(gateway_pid)
        figures["kernel_rss"] = [k.memory_info().rss / MIB for k in kernels]
        figures["kernel_uss"] = [k.memory_full_info().uss / MIB for k in kernels]
        figures["rtt"] = await round_trips({"remote": remote, "local": near}, rounds)
        for index in range(sessions):
            await remote.call_tool("delete_session", {"session_id": f"r{index}"})
    return figures


def _redis_executable() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    return found


def report(f: dict[str, Any], sessions: int, rounds: int) -> None:
    kernels = len(f["kernel_rss"])
    per_session = (f["replica_busy"] - f["replica_idle"]) / sessions
    per_kernel_gw = (f["gateway_busy"] - f["gateway_idle"]) / max(kernels, 1)
    start_remote = statistics.median(f["start_remote"]) * 1000
    start_local = statistics.median(f["start_local"]) * 1000
    rtt = f["rtt"]
    print(f"sessions: {sessions}, kernels seen on the gateway: {kernels}, rounds: {rounds}")
    print(f"replica RSS idle                      {f['replica_idle']:8.1f} MiB")
    print(f"replica RSS with {sessions} sessions           {f['replica_busy']:8.1f} MiB")
    print(f"  per attached session                {per_session:8.2f} MiB")
    print(f"gateway RSS idle                      {f['gateway_idle']:8.1f} MiB")
    print(f"gateway RSS with {kernels} kernels            {f['gateway_busy']:8.1f} MiB")
    print(f"  per kernel on the gateway           {per_kernel_gw:8.2f} MiB")
    print(f"kernel RSS (median)                   {statistics.median(f['kernel_rss']):8.1f} MiB")
    print(f"kernel USS (median)                   {statistics.median(f['kernel_uss']):8.1f} MiB")
    print(f"new session to first 1+1, gateway     {start_remote:8.1f} ms (median)")
    print(f"new session to first 1+1, local       {start_local:8.1f} ms (median)")
    print(
        f"1+1 through the replica               {rtt['remote']:8.2f} ms   "
        f"{rtt['remote'] / rtt['local']:5.2f}x local ({rtt['local']:.2f} ms)"
    )
    print(f"PostgreSQL PSS (pool connected)       {f['postgres']:8.1f} MiB")
    print(f"Redis used_memory_rss                 {f['redis']:8.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(measure(args.sessions, args.rounds))


if __name__ == "__main__":
    main()
