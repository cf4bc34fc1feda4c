"""Idle CPU: what 16 idle sessions cost per second, per kind of process and per thread.

Runs the real ``python-mcp-server`` command (streamable HTTP) in each configuration,
creates 16 sessions (each runs one cell that lists its threads), waits until start-up work
has ended, then reads the CPU time (``/proc/.../schedstat``, nanoseconds) and the
voluntary context switches (wake-ups) of every thread of every process in the server's
tree, twice, a fixed window apart. CPU time and wake-ups are counted, not timed, so they
hold on a loaded machine better than wall-clock figures (a wake-up still costs more CPU
when caches are cold).

Processes are sorted by kind: ``server``, ``kernel`` (pooled kernels included), ``template``
(the fork template), ``bwrap`` and ``sh`` (sandbox wrappers), ``forwarder`` (the egress
forwarder inside a sandbox: a child of the kernel program, forked before it became the
kernel) and ``other``. Kernel threads are named by asking each session's
kernel for ``threading.enumerate()`` before the window (its ids are mapped through the
pid namespace of a sandbox).

Run: ``.venv/bin/python bench/bench_idle.py [--window 30] [--configs default,unsandboxed]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from fastmcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from _common import ServerProcess, process_tree, structured, wait_port

#: The goal: 16 idle sessions cost at most this much CPU per second of wall time.
TARGET_MS_PER_S = 5.0
SESSIONS = 16
CONFIGS: dict[str, dict[str, str]] = {
    "default": {},  # bubblewrap sandbox, preload auto, egress allowlist, pool of 1
    "unsandboxed": {"MCP_SANDBOX": "none"},  # kernels forked from a preloaded template
    "plain": {"MCP_SANDBOX": "none", "MCP_KERNEL_FORK": "false", "MCP_KERNEL_PRELOAD": "none"},
}
THREAD_NAMES = (
    "import threading, json; print(json.dumps({t.native_id: t.name "
    "for t in threading.enumerate()}))"
)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ThreadReading:
    """One thread's CPU seconds and voluntary context switches at one moment."""

    cpu: float
    wakeups: int
    ns_tid: int


def kind(process: psutil.Process, server_pid: int) -> str:
    if process.pid == server_pid:
        return "server"
    name = process.name()
    if name == "bwrap":
        return "bwrap"
    if name in ("sh", "dash", "bash"):
        return "sh"
    argv = process.cmdline()
    command = " ".join(argv)
    if argv[1:3] == ["-I", "-S"] and "listener.accept()" in command:
        return "forwarder"
    if '"mode": "template"' in command and process.ppid() == server_pid:
        return "template"  # its forked kernels carry its command line too
    if "python" in name or "ipykernel" in command or "kernel_program" in command:
        return "kernel"
    return "other"


def read_threads(pid: int) -> dict[int, ThreadReading]:
    """Every thread of a process: CPU seconds, wake-ups, and its id in its pid namespace."""
    readings: dict[int, ThreadReading] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return readings
    for entry in tids:
        tid = int(entry)
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{tid}/status") as status:
                lines = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        try:  # nanoseconds on the CPU (utime and stime count whole clock ticks)
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                cpu = int(schedstat.read().split()[0]) / 1e9
        except OSError:
            cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        ns_tid = int(lines.get("NSpid", str(tid)).split()[-1])
        wakeups = int(lines["voluntary_ctxt_switches"])
        readings[tid] = ThreadReading(cpu, wakeups, ns_tid)
    return readings


def snapshot(server_pid: int) -> dict[int, tuple[str, dict[int, ThreadReading]]]:
    """Kind and thread readings of every process in the server's tree."""
    kinds: dict[int, str] = {}
    parents: dict[int, int] = {}
    for process in process_tree(server_pid):
        try:
            kinds[process.pid], parents[process.pid] = kind(process, server_pid), process.ppid()
        except psutil.Error:
            continue
    result: dict[int, tuple[str, dict[int, ThreadReading]]] = {}
    for pid, process_kind in kinds.items():
        if process_kind == "kernel" and kinds.get(parents[pid]) == "kernel":
            process_kind = "forwarder"  # forked by the kernel program before it becomes one
        result[pid] = (process_kind, read_threads(pid))
    return result


def thread_label(
    pid: int, tid: int, reading: ThreadReading, names: dict[int, dict[int, str]]
) -> str:
    if tid == pid:
        return "main"
    known = names.get(pid, {})
    return known.get(reading.ns_tid, "unnamed")


async def kernel_thread_names(client: Client[Any], session: str) -> dict[int, str]:
    answer = structured(
        await client.call_tool("run_python_code", {"code": THREAD_NAMES, "session_id": session})
    )
    return {int(k): v for k, v in json.loads(answer["stdout"].strip()).items()}


def kernel_python_pid(pid: int) -> int:
    """The Python process of a kernel (a sandbox's wrapper pid leads to it)."""
    tree = process_tree(pid)
    for process in tree:
        with_name = process.name()
        if "python" in with_name:
            return process.pid
    return pid


async def measure(name: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    server = ServerProcess("--toolsets", "default,diagnostics", env=env)
    figures: dict[str, Any] = {"config": name}
    try:
        wait_port(server.port, timeout=120)
        async with Client(server.url, timeout=300) as client:
            sessions = [f"idle{i}" for i in range(SESSIONS)]
            for session in sessions:
                structured(await client.call_tool("create_session", {"session_id": session}))
            names: dict[int, dict[int, str]] = {}
            for session in sessions:
                health = structured(
                    await client.call_tool("get_kernel_health", {"session_id": session})
                )
                pid = kernel_python_pid(int(health["pid"]))
                names[pid] = await kernel_thread_names(client, session)
            await asyncio.sleep(args.settle)  # the pool refilled, start-up work ended
            before = snapshot(server.process.pid)
            started = time.perf_counter()
            await asyncio.sleep(args.window)
            after = snapshot(server.process.pid)
            elapsed = time.perf_counter() - started
            figures.update(summarise(before, after, names, elapsed))
            figures["window_s"] = round(elapsed, 1)
            for session in sessions:
                await client.call_tool("delete_session", {"session_id": session})
    finally:
        server.stop()
    return figures


def summarise(
    before: dict[int, tuple[str, dict[int, ThreadReading]]],
    after: dict[int, tuple[str, dict[int, ThreadReading]]],
    names: dict[int, dict[int, str]],
    elapsed: float,
) -> dict[str, Any]:
    """ms of CPU per second and wake-ups per second, per kind and per (kind, thread)."""
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # ms, wakeups, n
    by_thread: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for pid, (process_kind, threads) in after.items():
        old = before.get(pid, (process_kind, {}))[1]
        by_kind[process_kind][2] += 1
        for tid, reading in threads.items():
            start = old.get(tid, ThreadReading(0.0, 0, reading.ns_tid))
            cpu = (reading.cpu - start.cpu) * 1000 / elapsed
            wakeups = (reading.wakeups - start.wakeups) / elapsed
            by_kind[process_kind][0] += cpu
            by_kind[process_kind][1] += wakeups
            label = f"{process_kind}/{thread_label(pid, tid, reading, names)}"
            by_thread[label][0] += cpu
            by_thread[label][1] += wakeups
    total = sum(v[0] for v in by_kind.values())
    return {
        "idle_cpu_ms_per_s": round(total, 2),
        "wakeups_per_s": round(sum(v[1] for v in by_kind.values()), 1),
        "kinds": {
            k: {
                "processes": int(v[2]),
                "cpu_ms_per_s": round(v[0], 2),
                "wakeups_per_s": round(v[1], 1),
            }
            for k, v in sorted(by_kind.items())
        },
        "threads": {
            k: {"cpu_ms_per_s": round(v[0], 2), "wakeups_per_s": round(v[1], 1)}
            for k, v in sorted(by_thread.items(), key=lambda item: -item[1][1])
            if v[1] > 0 or v[0] > 0
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="default,unsandboxed")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds waited before")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)"
    )
    parser.add_argument("--top", type=int, default=12, help="threads listed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = []
    for name in [n for n in args.configs.split(",") if n]:
        extra = dict(item.split("=", 1) for item in args.env)
        figures = asyncio.run(measure(name, {**CONFIGS[name], **extra}, args))
        results.append(figures)
        verdict = "meets" if figures["idle_cpu_ms_per_s"] <= TARGET_MS_PER_S else "misses"
        print(
            f"{name}: {SESSIONS} idle sessions, {figures['idle_cpu_ms_per_s']} ms CPU/s "
            f"({verdict} the target of {TARGET_MS_PER_S:g} ms/s), "
            f"{figures['wakeups_per_s']} wake-ups/s over {figures['window_s']} s"
        )
        for k, v in figures["kinds"].items():
            print(
                f"  {k:<10} x{v['processes']:<3} {v['cpu_ms_per_s']:>7.2f} ms/s "
                f"{v['wakeups_per_s']:>7.1f} wake-ups/s"
            )
        for label, v in list(figures["threads"].items())[: args.top]:
            cpu, wakeups = v["cpu_ms_per_s"], v["wakeups_per_s"]
            print(f"    {label:<40} {cpu:>7.2f} ms/s {wakeups:>7.1f} wake-ups/s")
    after = os.getloadavg()
    print(f"load after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"load": [load, after], "results": results}, indent=2))


if __name__ == "__main__":
    main()
