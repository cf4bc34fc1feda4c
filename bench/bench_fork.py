"""Forked kernels alone: fork to first answer, and where each child's own memory goes.

Starts the kernel program in template mode with the data-stack preload (no server), asks
it for kernels one after another (or ``--burst`` at once), and times, per kernel, the
request to the fork's report and to the first ``kernel_info`` reply; after one ``1+1`` in
each it reads every kernel's unique memory (USS) and, with ``--smaps``, splits the first
kernel's private pages by mapping (heap, anonymous, libraries, stacks).

Run: ``.venv/bin/python bench/bench_fork.py [--kernels 8] [--burst 1] [--smaps]``
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from python_mcp_server.core.sessions.preload import preload_modules
from python_mcp_server.core.sessions.thread_context import KERNEL_ARGS as THREAD_CONTEXT_ARGS
from python_mcp_server.infra.kernels.local import KERNEL_ARGS, program_source, template_source

MIB = 1024 * 1024


def private_by_mapping(pid: int) -> dict[str, int]:
    """Private (dirty and clean) bytes of each mapping kind in /proc/pid/smaps."""
    totals: dict[str, int] = defaultdict(int)
    name = "?"
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
                path = fields[5] if len(fields) > 5 else "[anon]"
                name = Path(path).name if path.startswith("/") else path
            elif fields[0] in ("Private_Dirty:", "Private_Clean:"):
                totals[name] += int(fields[1]) * 1024
    return dict(totals)


def mappings(pid: int) -> dict[str, tuple[str, int]]:
    """Address range -> (name, private bytes) of each mapping in /proc/pid/smaps."""
    found: dict[str, tuple[str, int]] = {}
    key = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                key = fields[0]
                path = fields[5] if len(fields) > 5 else "[anon]"
                found[key] = (Path(path).name if path.startswith("/") else path, 0)
            elif fields[0] in ("Private_Dirty:", "Private_Clean:"):
                name, size = found[key]
                found[key] = (name, size + int(fields[1]) * 1024)
    return found


def start_template(
    python: str, preload: list[str], program: str, template: str
) -> subprocess.Popen[bytes]:
    config = {
        "mode": "template",
        "preload": preload,
        "limits": [],
        "server_pid": os.getpid(),
        "kernel_args": [*KERNEL_ARGS, *THREAD_CONTEXT_ARGS],
        "template": template,  # template_program.py, which the kernel program runs
    }
    process = subprocess.Popen(
        [python, "-c", program, json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    assert "ready" in ready, ready
    return process


def ask(template: subprocess.Popen[bytes], number: int, folder: Path) -> tuple[Path, Path]:
    connection = folder / f"k{number}.json"
    write_connection_file(
        str(connection),
        transport="ipc",
        ip=str(folder / f"k{number}"),
        key=secrets.token_hex(32).encode(),
        kernel_name="python3",
    )
    log = folder / f"k{number}.log"
    env = {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}
    order = {
        "id": number,
        "argv": ["-f", str(connection), *KERNEL_ARGS, *THREAD_CONTEXT_ARGS],
        "cwd": str(folder),
        "env": env,
        "log": str(log),
    }
    assert template.stdin is not None
    template.stdin.write((json.dumps(order) + "\n").encode())
    template.stdin.flush()
    return connection, log


def read_pid(template: subprocess.Popen[bytes]) -> int:
    assert template.stdout is not None
    while True:
        message = json.loads(template.stdout.readline())
        if "forked" in message:
            return int(message["pid"])


def connect(connection: Path) -> BlockingKernelClient:
    # The context whose RECONNECT_IVL main() sets (jupyter_client makes its own otherwise).
    client = BlockingKernelClient(connection_file=str(connection), context=zmq.Context.instance())
    client.load_connection_file()
    client.start_channels()
    return client


def first_answer(client: BlockingKernelClient) -> None:
    client.kernel_info()
    client.get_shell_msg(timeout=60)


def run(client: BlockingKernelClient, code: str) -> None:
    client.execute(code)
    reply = client.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]


def pct(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=8)
    parser.add_argument("--burst", type=int, default=1, help="kernels asked for at once")
    parser.add_argument("--smaps", action="store_true", help="split the first kernel's pages")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--program", type=Path, help="another kernel_program.py (to compare)")
    parser.add_argument("--template", type=Path, help="another template_program.py (to compare)")
    args = parser.parse_args()
    zmq.Context.instance().setsockopt(zmq.RECONNECT_IVL, 10)  # as the server's channels
    load = os.getloadavg()
    print(f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    preload = list(preload_modules("auto"))
    started = time.perf_counter()
    program = args.program.read_text() if args.program else program_source()
    text = args.template.read_text() if args.template else template_source()
    template = start_template(args.python, preload, program, text)
    print(f"template ready in {time.perf_counter() - started:.2f} s (pid {template.pid})")
    fork_times: list[float] = []
    answer_times: list[float] = []
    cpu_times: list[float] = []
    clients: list[BlockingKernelClient] = []
    pids: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bf-", dir="/tmp") as name:
        folder = Path(name)
        try:
            number = 0
            while number < args.kernels:
                batch = min(args.burst, args.kernels - number)
                asked = time.perf_counter()
                connections = [ask(template, number + i, folder)[0] for i in range(batch)]
                batch_pids = [read_pid(template) for _ in range(batch)]
                forked = time.perf_counter()
                batch_clients = [connect(c) for c in connections]
                for client, pid in zip(batch_clients, batch_pids, strict=True):
                    first_answer(client)
                    answer_times.append(time.perf_counter() - asked)
                    cpu = psutil.Process(pid).cpu_times()
                    cpu_times.append(cpu.user + cpu.system)
                fork_times += [forked - asked] * batch
                clients += batch_clients
                pids += batch_pids
                number += batch
            first_runs, second_runs = [], []
            for client in clients:
                started = time.perf_counter()
                run(client, "1+1")
                first_runs.append(time.perf_counter() - started)
                started = time.perf_counter()
                run(client, "1+1")
                second_runs.append(time.perf_counter() - started)
            print(f"first 1+1: {pct(first_runs)}; second 1+1: {pct(second_runs)}")
            time.sleep(1.0)
            print(f"fork reported: {pct(fork_times)}")
            print(f"first kernel_info answer: {pct(answer_times)}")
            print(f"kernel CPU time by then: {pct(cpu_times)}")
            uss = [psutil.Process(pid).memory_full_info().uss for pid in pids]
            print(
                f"USS per kernel: median {statistics.median(uss) / MIB:.1f} MB, "
                f"min {min(uss) / MIB:.1f}, max {max(uss) / MIB:.1f}"
            )
            threads = [psutil.Process(pid).num_threads() for pid in pids]
            print(f"threads per kernel: {statistics.median(threads)}")
            template_memory = psutil.Process(template.pid).memory_full_info()
            print(
                f"template USS {template_memory.uss / MIB:.1f} MB, "
                f"RSS {template_memory.rss / MIB:.1f} MB"
            )
            if args.smaps:
                parts = private_by_mapping(pids[-1])
                total = sum(parts.values())
                print(f"private pages of the last kernel: {total / MIB:.1f} MB")
                for part, size in sorted(parts.items(), key=lambda kv: -kv[1])[:8]:
                    print(f"  {size / MIB:7.2f} MB  {part}")
                inherited = mappings(template.pid)
                split: dict[str, int] = defaultdict(int)
                for key, (part, size) in mappings(pids[-1]).items():
                    split[("copied " if key in inherited else "new ") + part] += size
                for part, size in sorted(split.items(), key=lambda kv: -kv[1])[:8]:
                    print(f"  {size / MIB:7.2f} MB  {part}")
            if args.keep_logs:
                for log in sorted(folder.glob("*.log"))[:2]:
                    print(log.read_text())
        finally:
            for client in clients:
                client.stop_channels()
            for pid in pids:
                try:
                    os.killpg(pid, 9)
                except ProcessLookupError:
                    pass
            if template.stdin:
                template.stdin.close()
            template.wait(10)


if __name__ == "__main__":
    main()
