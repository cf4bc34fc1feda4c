"""Scale-out figures, each against a baseline measured in the same run.

1. ``run_python_code("1+1")`` over streamable HTTP: a single local server (kernel on the
   same machine, the baseline) against nginx (round robin, the rules of
   ``deploy/nginx/replicas.conf``) in front of two replicas whose kernels run on Jupyter
   Enterprise Gateway (``--gateway kernel``: Kernel Gateway; without Enterprise Gateway's
   fixture or venv the bench says so and uses Kernel Gateway); one replica straight on the
   gateway shows what nginx adds. Calls are interleaved across configurations so load on
   a shared machine hits all alike. Target: <= 1.3x.
2. Failover: a client calls ``1+1`` back to back through nginx; one replica gets SIGKILL at
   a random point of a call. Figure: time from the kill to the end of the first successful
   call started after it (target <= 2 s), against the median call time before the kill.
   Then the replica is started again on its port: time from its /health answering to the
   first request nginx routes to it (nginx's ``fail_timeout``).
3. History in PostgreSQL (``MCP_DATABASE_URL``; history and audit written by a queue, off
   the response path) against no history (``MCP_MAX_HISTORY=0``, ``MCP_MAX_AUDIT=0``):
   ``1+1`` on two local servers, interleaved with the rest. Target: <= 1.05x.

Needs the gateway venvs (made on first use, as the gateway tests do), nginx (``apt-get
install nginx-light``) and PostgreSQL (``apt-get install postgresql``; the bench makes a
cluster of its own in a temporary folder). Run: ``.venv/bin/python bench/bench_scaleout.py
[--rounds 200] [--failovers 3] [--gateway enterprise|kernel]``.
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

from fastmcp import Client  # noqa: E402
from tests.gateway.kernel_gateway import KernelGatewayProcess, start_kernel_gateway  # noqa: E402
from tests.gateway.replica_process import BALANCED_TOKEN, ReplicaProcess  # noqa: E402
from tests.services.nginx import Balancer, start_balancer  # noqa: E402
from tests.services.postgres import PostgresServer  # noqa: E402

from _common import ServerProcess, median_ms, structured, wait_port  # noqa: E402

WARMUP = 10
FAIL_TIMEOUT = 1.0  # nginx: seconds a failed replica is skipped before it is tried again


async def connect(url: str) -> Client[Any]:
    client: Client[Any] = Client(url, auth=BALANCED_TOKEN)
    await client.__aenter__()
    return client


async def one_plus_one(client: Client[Any]) -> None:
    data = structured(await client.call_tool("run_python_code", {"code": "1+1"}))
    assert data["result"] == "2", data


async def interleaved(urls: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Seconds of ``1+1`` per URL and round (after the warm-up), one call each per round."""
    clients = {name: await connect(url) for name, url in urls.items()}
    try:
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(rounds + WARMUP):
            for name, client in clients.items():
                started = time.perf_counter()
                await one_plus_one(client)
                samples[name].append(time.perf_counter() - started)
        return {name: values[WARMUP:] for name, values in samples.items()}
    finally:
        for client in clients.values():
            await client.__aexit__(None, None, None)


class Caller:
    """Calls ``1+1`` back to back through the balancer, noting each call's start and end."""

    def __init__(self, client: Client[Any]) -> None:
        self.client = client
        self.calls: list[tuple[float, float, bool]] = []
        self.lost = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await one_plus_one(self.client)
                ok = True
            except Exception:  # a call in flight on the killed replica: reported lost
                ok = False
                self.lost += 1
            self.calls.append((started, time.perf_counter(), ok))

    async def wait_calls(self, count: int) -> None:
        target = len(self.calls) + count
        while len(self.calls) < target:  # noqa: ASYNC110 (a benchmark's poll)
            await asyncio.sleep(0.005)

    async def first_success_after(self, moment: float) -> float:
        """End of the first successful call that started at or after ``moment``."""
        while True:
            for started, ended, ok in self.calls:
                if ok and started >= moment:
                    return ended
            await asyncio.sleep(0.001)


async def rejoin_seconds(balancer: Balancer, replica: ReplicaProcess, ready: float) -> float:
    """From the replica's /health answering to the first request nginx gave it."""
    seen = len(balancer.access())
    while True:
        for entry in balancer.access()[seen:]:
            if entry["upstream"].split(", ")[-1] == replica.address and entry["status"] == "200":
                return time.perf_counter() - ready
        await asyncio.sleep(0.01)


async def failovers(
    balancer: Balancer, replicas: list[ReplicaProcess], count: int
) -> list[dict[str, float]]:
    client = await connect(f"{balancer.url}/mcp")
    caller = Caller(client)
    stop = asyncio.Event()
    loop = asyncio.create_task(caller.run(stop))
    figures = []
    try:
        for n in range(count):
            await caller.wait_calls(20)
            before = [end - start for start, end, ok in caller.calls[-20:] if ok]
            victim = replicas[n % len(replicas)]
            lost_before = caller.lost
            killed = time.perf_counter()
            victim.kill()
            recovered = await caller.first_success_after(killed)
            await asyncio.to_thread(victim.start)
            ready = time.perf_counter()
            back = await rejoin_seconds(balancer, victim, ready)
            figures.append(
                {
                    "failover_s": recovered - killed,
                    "call_ms": statistics.median(before) * 1000,
                    "lost": caller.lost - lost_before,
                    "rejoin_s": back,
                }
            )
    finally:
        stop.set()
        await loop
        await client.call_tool("delete_session", {"session_id": "default"})
        await client.__aexit__(None, None, None)
    return figures


async def postgres_history_rows(url: str) -> int:
    """Executions the PostgreSQL-backed server recorded (its queue drains within seconds)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as connection:
        cursor = await connection.execute("SELECT count(*) FROM executions")
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


def compare(samples: dict[str, list[float]], name: str, base: str) -> tuple[float, float, float]:
    """Median ms of ``name``, its ratio of medians to ``base``, and the median of the
    per-round ratios (both calls of a round ran within milliseconds: load drift cancels)."""
    per_round = [a / b for a, b in zip(samples[name], samples[base], strict=True)]
    value = median_ms(samples[name])
    return value, value / median_ms(samples[base]), statistics.median(per_round)


def start_gateway(root: Path, wanted: str) -> tuple[KernelGatewayProcess, str]:
    """Enterprise Gateway when asked and available (its fixture and venv), else Kernel Gateway."""
    if wanted == "enterprise":
        try:
            from tests.gateway.enterprise_gateway import (
                ENTERPRISE_GATEWAY_VENV,
                start_enterprise_gateway,
            )
        except ImportError:
            note = "Enterprise Gateway fixture not in this tree"
        else:
            command, problem = ENTERPRISE_GATEWAY_VENV.ensure()
            if command is not None:
                return start_enterprise_gateway(root / "enterprise"), "Jupyter Enterprise Gateway"
            note = f"no Enterprise Gateway venv ({problem})"
        print(f"note: {note}; kernels run on a Jupyter Kernel Gateway instead")
    return start_kernel_gateway(root / "gateway"), "Jupyter Kernel Gateway"


def make_replicas(gateway: KernelGatewayProcess, root: Path, count: int) -> list[ReplicaProcess]:
    """Replicas sharing the gateway and a namespace; started by the caller (who stops them)."""
    namespace = f"bench-scaleout-{time.time_ns()}"
    return [ReplicaProcess(gateway, namespace, root / f"state-{n}") for n in range(count)]


async def main(rounds: int, failover_rounds: int, wanted_gateway: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    with contextlib.ExitStack() as stack:  # everything started is stopped, whatever fails
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        gateway, gateway_name = start_gateway(root, wanted_gateway)
        stack.callback(gateway.stop)
        postgres = PostgresServer.create()
        stack.callback(postgres.close)
        token = {"MCP_AUTH_TOKEN": BALANCED_TOKEN}
        quiet = {**token, "MCP_MAX_HISTORY": "0", "MCP_MAX_AUDIT": "0"}
        locals_: dict[str, ServerProcess] = {}
        for name, env in (
            ("local", token),
            ("no_history", quiet),
            ("postgres", {**token, "MCP_DATABASE_URL": postgres.url}),
        ):
            locals_[name] = ServerProcess(env=env)
            stack.callback(locals_[name].stop)
        replicas = make_replicas(gateway, root, 3)
        for replica in replicas:
            stack.callback(replica.stop)
        for replica in replicas:
            replica.start()
        balancer = start_balancer([r.port for r in replicas[:2]], fail_timeout=FAIL_TIMEOUT)
        stack.callback(shutil.rmtree, balancer.root, ignore_errors=True)
        stack.callback(balancer.stop)
        for server in locals_.values():
            wait_port(server.port, 240)
        urls = {name: server.url for name, server in locals_.items()}
        urls["direct"] = f"http://{replicas[2].address}/mcp"
        urls["balanced"] = f"{balancer.url}/mcp"
        latency = await interleaved(urls, rounds)
        history_rows = await postgres_history_rows(postgres.url)
        served = {e["upstream"] for e in balancer.access() if e["status"] == "200"}
        fails = await failovers(balancer, replicas[:2], failover_rounds)

    print(f"1+1 over streamable HTTP, median of {rounds} rounds after {WARMUP} warm-up, same run")
    print(f"(replicas' kernels on a {gateway_name}; ratios: of medians / median of per-round)")
    rows = [
        ("single local server (baseline)", "local", ""),
        ("one replica, gateway, no balancer", "direct", ""),
        ("nginx + 2 replicas + gateway", "balanced", "   (target <= 1.30x)"),
    ]
    for label, name, note in rows:
        value, ratio, per_round = compare(latency, name, "local")
        print(f"  {label:<36} {value:8.2f} ms   {ratio:5.2f}x / {per_round:5.2f}x{note}")
    print(f"  replicas that served through nginx: {len(served)}")
    print(f"failover (SIGKILL of one replica, nginx fail_timeout={FAIL_TIMEOUT:g}s):")
    for n, fig in enumerate(fails, 1):
        ratio = fig["failover_s"] * 1000 / fig["call_ms"]
        print(
            f"  #{n}: first success {fig['failover_s']:6.3f} s after the kill "
            f"({ratio:5.1f}x the {fig['call_ms']:.1f} ms call before; target <= 2 s), "
            f"calls lost {fig['lost']:.0f}, back in rotation {fig['rejoin_s']:5.2f} s "
            "after its /health answered"
        )
    print("history (local kernels, same run):")
    quiet_ms = median_ms(latency["no_history"])
    print(f"  {'no history (MCP_MAX_HISTORY=0)':<36} {quiet_ms:8.2f} ms   {1:5.2f}x")
    value, ratio, per_round = compare(latency, "postgres", "no_history")
    print(
        f"  {'history + audit in PostgreSQL':<36} {value:8.2f} ms   {ratio:5.2f}x / "
        f"{per_round:5.2f}x   (target <= 1.05x; {history_rows} executions recorded)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--gateway", choices=("enterprise", "kernel"), default="enterprise")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.failovers, args.gateway))
