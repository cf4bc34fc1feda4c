"""New sessions, first data import, memory and idle CPU: preloaded kernels against plain ones.

Each configuration runs the real ``python-mcp-server`` command over streamable HTTP, in the
same run, so the ratios hold on a loaded machine even when the absolute figures do not:

- ``plain``: no sandbox, no preload, no fork (the baseline);
- ``fork``: no sandbox, the data stack preloaded in a template per environment, kernels
  forked from it;
- ``sandbox``: the default: bubblewrap, the data stack preloaded in a sandboxed template
  (the server's interpreter and packages only), each kernel forked from it, isolating
  itself and taking its environment (root server or not);
- ``sandbox-start``: bubblewrap with ``MCP_SANDBOX_FORK=false``: the data stack preloaded
  as each kernel starts (if bwrap works);
- ``sandbox-fork``: ``sandbox`` with ``MCP_SANDBOX_FORK=true`` said explicitly.

Figures: new session to first answer (``create_session`` + ``run_python_code("1+1")``,
sequential and in bursts of 10) p50/p95/p99; the first ``import pandas,
matplotlib.pyplot`` in a new session; unique memory (USS) per idle session with 16
sessions, summed over the session's process tree, and (as root, from the page frames)
the memory only that tree maps, a page shared by two of its processes counted once; the
template's own USS apart; CPU of the server and every kernel per second of
a quiet window with 16 idle sessions; the server process's own CPU per sequential new
session (create, first call, delete, and the pool's side of refilling: the server is one
process, so this bounds how many new sessions a second it serves). Before the sessions:
the idle kernel pool (its depth, the kernels ready, and the memory of every process but
the server and the template proper: USS, and PSS with the template's shared pages split
among its users).
Before each burst, the kernels the pool held (``health_check``; null on servers that do
not report it).

``--non-root`` (run as root) starts each server as a uid of no user instead
(``tests/nonroot_support.py``), as the README's one-liner run by a normal user would.

Run: ``.venv/bin/python bench/bench_start.py [--quick] [--configs plain,fork,sandbox]
[--pool N] [--burst N] [--non-root]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from fastmcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    ServerProcess,
    percentiles_ms,
    pool_state,
    process_tree,
    structured,
    templates,
    tree_cpu_seconds,
    tree_uss,
    unique_by_group,
    wait_port,
)

MIB = 1024 * 1024
CONFIGS: dict[str, dict[str, str]] = {
    "plain": {"MCP_SANDBOX": "none", "MCP_KERNEL_PRELOAD": "none", "MCP_KERNEL_FORK": "false"},
    "fork": {"MCP_SANDBOX": "none", "MCP_KERNEL_PRELOAD": "auto", "MCP_KERNEL_FORK": "true"},
    "sandbox": {"MCP_SANDBOX": "bwrap", "MCP_KERNEL_PRELOAD": "auto"},
    "sandbox-start": {
        "MCP_SANDBOX": "bwrap",
        "MCP_KERNEL_PRELOAD": "auto",
        "MCP_SANDBOX_FORK": "false",
    },
    "sandbox-fork": {
        "MCP_SANDBOX": "bwrap",
        "MCP_KERNEL_PRELOAD": "auto",
        "MCP_SANDBOX_FORK": "true",
    },
}
DATA_IMPORT = "import pandas, matplotlib.pyplot"


async def new_session(client: Client[Any], name: str, code: str = "1+1") -> float:
    started = time.perf_counter()
    structured(await client.call_tool("create_session", {"session_id": name}))
    answer = structured(
        await client.call_tool("run_python_code", {"code": code, "session_id": name})
    )
    elapsed = time.perf_counter() - started
    assert answer["status"] == "ok", answer
    return elapsed


async def delete(client: Client[Any], names: list[str]) -> None:
    for name in names:
        await client.call_tool("delete_session", {"session_id": name})


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds of the server's own process (every thread; no kernel)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def pool_memory(server_pid: int) -> tuple[float, float]:
    """USS and PSS (MB) of every process under the server but the template proper: the
    idle pool's kernels (with their sandbox processes), and the sandboxed template's
    keeper. Shared pages count in PSS, split among the processes sharing them."""
    skip = set(templates(server_pid))
    uss = pss = 0
    for process in process_tree(server_pid)[1:]:
        if process.pid in skip:
            continue
        try:
            info = process.memory_full_info()
        except psutil.Error:
            continue
        uss += info.uss
        pss += info.pss
    return round(uss / MIB, 1), round(pss / MIB, 1)


def non_root(settings: dict[str, str]) -> ServerProcess:
    """The server as a uid of no user (``tests/nonroot_support.py``, from a root run):
    its home, state folder and workspace its own."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.nonroot_support import as_server_user, user_folder

    home = user_folder("bench-home-")
    settings = {**settings, "HOME": str(home), "MCP_STATE_DIR": str(home / "state")}
    settings.pop("XDG_STATE_HOME", None)
    server = ServerProcess(
        "--toolsets",
        "default,diagnostics",
        env=settings,
        workspace=user_folder("bench-ws-"),
        wrap=as_server_user,
    )
    server.remove.append(home)
    return server


async def measure(name: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    settings = {**env, "MCP_KERNEL_POOL_SIZE": str(args.pool)}
    if args.burst is not None:
        settings["MCP_KERNEL_POOL_BURST"] = str(args.burst)
    if args.non_root:
        server = non_root(settings)
    else:
        server = ServerProcess("--toolsets", "default,diagnostics", env=settings)
    figures: dict[str, Any] = {"config": name}
    try:
        wait_port(server.port, timeout=120)
        async with Client(server.url, timeout=300) as client:
            await asyncio.sleep(args.settle)  # the pool fills, the template preloads
            await new_session(client, "warmup")
            await delete(client, ["warmup"])
            await asyncio.sleep(args.settle)
            ready, depth = await pool_state(client)
            give_up = time.perf_counter() + 60
            while ready is not None and depth and ready < depth and time.perf_counter() < give_up:
                await asyncio.sleep(0.5)  # a deep pool of slow kernels fills after the settle
                ready, depth = await pool_state(client)
            figures["pool_depth"], figures["pool_ready_idle"] = depth, ready
            uss, pss = pool_memory(server.process.pid)
            figures["pool_idle_uss_mb"], figures["pool_idle_pss_mb"] = uss, pss
            samples = []
            cpu = server_cpu_seconds(server.process.pid)
            for i in range(args.iterations):
                samples.append(await new_session(client, f"s{i}"))
                await delete(client, [f"s{i}"])
            figures["sequential_ms"] = percentiles_ms(samples)
            cpu = server_cpu_seconds(server.process.pid) - cpu
            figures["server_cpu_ms_per_new_session"] = round(cpu * 1000 / args.iterations, 1)
            figures["pool_ready_after_sequential"] = (await pool_state(client))[0]
            burst_samples: list[float] = []
            figures["pool_ready_before_bursts"] = []
            for b in range(args.bursts):
                await asyncio.sleep(args.settle)
                figures["pool_ready_before_bursts"].append((await pool_state(client))[0])
                names = [f"b{b}-{i}" for i in range(10)]
                burst_samples += await asyncio.gather(*(new_session(client, n) for n in names))
                await delete(client, names)
            figures["burst10_ms"] = percentiles_ms(burst_samples)
            await asyncio.sleep(args.settle)
            imports = []
            for i in range(args.import_rounds):
                imports.append(await new_session(client, f"i{i}", DATA_IMPORT))
                await delete(client, [f"i{i}"])
                await asyncio.sleep(args.settle / 2)
            figures["first_data_import_ms"] = percentiles_ms(imports)
            idle = [f"idle{i}" for i in range(16)]
            for session in idle:
                await new_session(client, session)
            await asyncio.sleep(args.settle * 4)  # the pool refilled, start-up work ended
            pids = []
            for session in idle:
                health = structured(
                    await client.call_tool("get_kernel_health", {"session_id": session})
                )
                pids.append(int(health["pid"]))
            per_session = [tree_uss(pid) for pid in pids]
            figures["uss_per_idle_session_mb"] = round(sum(per_session) / len(pids) / MIB, 1)
            trees = [[p.pid for p in process_tree(pid)] for pid in pids]
            mine = {pid for tree in trees for pid in tree}
            others = [p.pid for p in process_tree(server.process.pid) if p.pid not in mine]
            unique = unique_by_group(trees, others)  # pages shared within a tree count once
            figures["unique_per_idle_session_mb"] = (
                None if unique is None else round(sum(unique) / len(pids) / MIB, 1)
            )
            everything = process_tree(server.process.pid)[1:]  # every kernel, wrapper and template
            pss = sum(p.memory_full_info().pss for p in everything if p.is_running())
            figures["pss_all_kernels_per_session_mb"] = round(pss / len(pids) / MIB, 1)
            figures["template_uss_mb"] = [  # the template alone, not its kernels
                round(psutil.Process(t).memory_full_info().uss / MIB, 1)
                for t in templates(server.process.pid)
            ]
            before = tree_cpu_seconds(server.process.pid)
            started = time.perf_counter()
            await asyncio.sleep(args.idle_window)
            spent = tree_cpu_seconds(server.process.pid) - before
            figures["idle_cpu_ms_per_s_16"] = round(
                spent * 1000 / (time.perf_counter() - started), 2
            )
            await delete(client, idle)
            figures["preload_mode"] = (
                await client.call_tool("health_check", {})
            ).structured_content["preload"]["mode"]
    finally:
        server.stop()
    return figures


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 iterations, 2 bursts")
    parser.add_argument("--configs", default="plain,fork,sandbox")
    parser.add_argument("--pool", type=int, default=2, help="MCP_KERNEL_POOL_SIZE")
    parser.add_argument(
        "--burst", type=int, help="MCP_KERNEL_POOL_BURST (default: the server's own)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--non-root",
        action="store_true",
        help="run each server as a user that is not root (the benchmark itself as root)",
    )
    args = parser.parse_args()
    args.iterations = 20 if args.quick else 100
    args.bursts = 2 if args.quick else 5
    args.import_rounds = 5 if args.quick else 10
    args.idle_window = 10.0 if args.quick else 30.0
    args.settle = 3.0
    names = [n for n in args.configs.split(",") if n]
    if shutil.which("bwrap") is None:
        names = [n for n in names if not n.startswith("sandbox")]
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = []
    for name in names:
        results.append(asyncio.run(measure(name, CONFIGS[name], args)))
        print(json.dumps(results[-1]), flush=True)
    base = next((r for r in results if r["config"] == "plain"), None)
    keys = {
        "new session p50": ("sequential_ms", "p50"),
        "burst p50": ("burst10_ms", "p50"),
        "first data import p50": ("first_data_import_ms", "p50"),
    }
    for figures in results:
        if base is None or figures is base:
            continue
        parts = [
            f"{label} {ratio(figures[key][q], base[key][q])}" for label, (key, q) in keys.items()
        ]
        per_session = "uss_per_idle_session_mb"
        parts.append(f"USS/session {ratio(figures[per_session], base[per_session])}")
        print(f"{figures['config']} / plain: " + ", ".join(parts))
    if args.json:
        args.json.write_text(json.dumps({"load": load, "results": results}, indent=2))


if __name__ == "__main__":
    main()
