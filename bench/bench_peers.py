"""Our server beside its peers, on the same work, interleaved in one run on this machine.

Peers (``_peers.py``), each but ours installed on first use in its own virtual
environment under ``.bench-venvs/`` (git-ignored):

- ``ours``: our server with its defaults (as root: bubblewrap sandbox, kernels forked
  from a sandboxed preloaded template, a pool of ``MCP_KERNEL_POOL_BURST`` ready kernels);
- ``ours-fork``: ours without the sandbox (kernels forked from an unsandboxed template);
- ``pypi``: the PyPI ``python-mcp-server==0.6.2`` (one active session at a time);
- ``jupyter``: ``jupyter-mcp-server`` beside the Jupyter server it drives (a notebook per
  session, ``execute_code`` in its kernel).

Every peer is started first; then each section runs against every peer in turn, the
order rotating from section to section, so the machine's load (shared, changing) falls
on all of them alike and the ratios compare figures of the same minutes. Before each
peer's turn the benchmark waits ``--settle`` seconds and until the peer is quiet (ours:
its pool full again, as ``health_check`` reports), so no peer's background work lands in
another's figures; every call counts only once its answer is the expected one.

Figures: warm ``1+1`` p50/p95/p99; new session to first answer, sequential and in bursts
of 10; calls/s at 4/8/16 clients (each with its own session where the server has
sessions); unique memory per session (USS that 4 sessions add to every kernel process,
sandbox processes included), plain and after importing the data stack; the first data
import in a new session; the size of ``tools/list``; the load average at every turn.

Run: ``.venv/bin/python bench/bench_peers.py --quick [--peers ours,ours-fork,pypi,jupyter]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastmcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles_ms, timed
from _peers import PEERS, Peer

DATA_IMPORT = "import pandas, matplotlib.pyplot"
MIB = 1024 * 1024
#: Figures compared with ours: (key, lower is better).
COMPARED = [
    ("warm_1plus1_ms", True),
    ("new_session_ms", True),
    ("burst10_ms", True),
    ("first_data_import_ms", True),
    ("calls_per_s_4", False),
    ("calls_per_s_8", False),
    ("calls_per_s_16", False),
    ("uss_per_session_mb", True),
    ("uss_per_session_data_mb", True),
]


async def drop_log(_message: Any) -> None:
    """Drop the servers' log notifications (one peer sends several per call)."""


def uss(peer: Peer) -> int:
    total = 0
    for process in peer.kernels():
        with contextlib.suppress(Exception):
            total += process.memory_full_info().uss
    return total


class Bench:
    """The work, section by section: a section a peer cannot do is noted, not fatal."""

    def __init__(self, peer: Peer, client: Client[Any], args: argparse.Namespace) -> None:
        self.peer, self.client, self.args = peer, client, args
        self.live: set[str] = set()
        self.figures: dict[str, Any] = {"peer": peer.name, "turns": []}

    async def new(self, name: str, code: str = "1+1") -> None:
        await self.peer.create(self.client, name)
        self.live.add(name)
        await self.peer.run(self.client, code, name)

    async def cleanup(self) -> None:
        for name in sorted(self.live):
            with contextlib.suppress(Exception):
                await self.peer.delete(self.client, name)
        self.live.clear()

    async def tools(self) -> dict[str, Any]:
        tools = await self.client.list_tools()
        listed = [t.model_dump(mode="json", exclude_none=True) for t in tools]
        return {"tools": len(tools), "tools_list_bytes": len(json.dumps(listed))}

    async def warm(self) -> dict[str, Any]:
        await self.peer.run(self.client, "1+1", None)
        samples = []
        for _ in range(self.args.rounds):
            samples.append(await timed(lambda: self.peer.run(self.client, "1+1", None)))
        return {"warm_1plus1_ms": percentiles_ms(samples)}

    async def sequential(self) -> dict[str, Any]:
        samples = []
        for i in range(self.args.iterations):
            samples.append(await timed(lambda i=i: self.new(f"s{i}")))
            await self.cleanup()
        return {"new_session_ms": percentiles_ms(samples)}

    async def bursts(self) -> dict[str, Any]:
        samples: list[float] = []
        ready = []
        for b in range(self.args.bursts):
            if b:
                await asyncio.sleep(self.args.settle)
            ready.append((await self.peer.quiet(self.client)).get("pool_ready"))
            names = [f"b{b}x{i}" for i in range(10)]
            samples += await asyncio.gather(*(timed(lambda n=n: self.new(n)) for n in names))
            await self.cleanup()
        return {"burst10_ms": percentiles_ms(samples), "pool_ready_before_bursts": ready}

    async def first_import(self) -> dict[str, Any]:
        samples = []
        for i in range(self.args.import_rounds):
            if i:
                await asyncio.sleep(self.args.settle / 2)
                await self.peer.quiet(self.client)
            samples.append(await timed(lambda i=i: self.new(f"i{i}", DATA_IMPORT)))
            await self.cleanup()
        return {"first_data_import_ms": percentiles_ms(samples)}

    async def memory(self) -> dict[str, Any]:
        """What 4 more sessions add to the USS of every kernel process, per session."""
        names = [f"m{i}" for i in range(4)]
        before = uss(self.peer)
        for name in names:
            await self.new(name)
        await asyncio.sleep(self.args.settle)
        await self.peer.quiet(self.client)  # a pool refills to where it was
        plain = uss(self.peer)
        for name in names:
            await self.peer.run(self.client, DATA_IMPORT, name)
        await self.peer.quiet(self.client)
        loaded = uss(self.peer)
        await self.cleanup()
        return {
            "uss_per_session_mb": round((plain - before) / len(names) / MIB, 1),
            "uss_per_session_data_mb": round((loaded - before) / len(names) / MIB, 1),
        }

    async def throughput(self, clients: int) -> dict[str, Any]:
        names = [f"c{clients}x{i}" for i in range(clients)] if self.peer.sessions else []
        for name in names:
            await self.new(name)
        await self.peer.quiet(self.client)  # a pool's refill is not part of the window
        done = 0

        async def worker(name: str | None, deadline: float) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await self.peer.run(self.client, "1+1", name)
                done += 1

        started = time.perf_counter()
        deadline = started + self.args.throughput_window
        targets: list[str | None] = list(names) or [None] * clients
        await asyncio.gather(*(worker(n, deadline) for n in targets))
        rate = round(done / (time.perf_counter() - started), 1)
        await self.cleanup()
        return {f"calls_per_s_{clients}": rate}

    async def turn(self, name: str, section: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """One section against this peer, once it is quiet; its failure is noted."""
        await asyncio.sleep(self.args.settle)
        await self.peer.quiet(self.client)
        self.figures["turns"].append([name, round(os.getloadavg()[0], 2)])
        try:
            self.figures.update(await asyncio.wait_for(section(), self.args.section_timeout))
        except Exception as exc:  # a peer that cannot do it: say why, go on
            self.figures[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:200]
            await self.cleanup()


def sections(bench: Bench) -> list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]]:
    return [
        ("tools", bench.tools),
        ("warm", bench.warm),
        ("sequential", bench.sequential),
        ("bursts", bench.bursts),
        ("first_import", bench.first_import),
        ("memory", bench.memory),
        *[(f"clients{n}", lambda n=n: bench.throughput(n)) for n in (4, 8, 16)],
    ]


async def measure(names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start every peer, then run each section against each in turn (rotating order)."""
    results: dict[str, dict[str, Any]] = {}
    peers: list[Peer] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            benches: list[Bench] = []
            for name in names:
                peer = PEERS[name]()
                peers.append(peer)
                try:
                    peer.start()
                    client = Client(peer.url, timeout=300, log_handler=drop_log)
                    await stack.enter_async_context(client)
                except Exception as exc:  # one peer failing must not lose the others
                    results[name] = {"peer": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
                    continue
                benches.append(Bench(peer, client, args))
            for index in range(len(sections(benches[0])) if benches else 0):
                shift = index % len(benches)
                for bench in benches[shift:] + benches[:shift]:
                    name, section = sections(bench)[index]
                    await bench.turn(name, section)
            for bench in benches:
                results[bench.peer.name] = bench.figures
    finally:
        for peer in peers:
            peer.stop()
    return [results[name] for name in names if name in results]


def ratios(results: list[dict[str, Any]]) -> None:
    """Each peer's figures over ours, from this run (>1: ours is better)."""
    ours = next((r for r in results if r.get("peer") == "ours"), None)
    for figures in results:
        if ours is None or figures is ours:
            continue
        parts = []
        for key, lower_better in COMPARED:
            if key not in figures or key not in ours:
                continue
            mine, theirs = ours[key], figures[key]
            if isinstance(mine, dict):
                mine, theirs = mine["p50"], theirs["p50"]
            if not mine or not theirs:
                continue
            ratio = theirs / mine if lower_better else mine / theirs
            parts.append(f"{key} {ratio:.2f}x")
        print(f"{figures['peer']} against ours: " + ", ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, bounded run")
    parser.add_argument("--peers", default="ours,ours-fork,pypi,jupyter")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.rounds = 30 if args.quick else 100
    args.iterations = 10 if args.quick else 100
    args.bursts = 1 if args.quick else 5
    args.import_rounds = 3 if args.quick else 10
    args.throughput_window = 3.0 if args.quick else 10.0
    args.settle = 3.0
    args.section_timeout = 180.0 if args.quick else 900.0
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = asyncio.run(measure([n for n in args.peers.split(",") if n], args))
    for figures in results:
        print(json.dumps(figures), flush=True)
    end = os.getloadavg()
    print(f"load at the end: {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}")
    ratios(results)
    if args.json:
        args.json.write_text(json.dumps({"load": [load, end], "results": results}, indent=2))


if __name__ == "__main__":
    main()
