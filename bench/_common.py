"""Shared benchmark helpers: free ports, the server command, timing, medians, process trees,
our fork templates and kernel pool."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
from fastmcp import Client

BIN = Path(sys.executable).parent
#: The frame number bits of a /proc/pid/pagemap entry.
PFN_MASK = (1 << 55) - 1


#: A FastMCP server whose one tool returns "ok" (the floor of a tool call); argv[1] is
#: its port.
NOOP_SERVER = textwrap.dedent(
    """
    import sys
    from fastmcp import FastMCP
    mcp = FastMCP("noop")
    @mcp.tool
    async def noop() -> str:
        return "ok"
    mcp.run(transport="http", host="127.0.0.1", port=int(sys.argv[1]), show_banner=False,
            log_level="warning")
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise TimeoutError(f"nothing listens on port {port}")


class ServerProcess:
    """The python-mcp-server command on a free loopback port, in a throwaway workspace."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        workspace: Path | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        """``workspace``: a folder to use (removed at the end); ``wrap``: turns the
        command into the one to run (another user's, say)."""
        self.port = free_port()
        self.workspace = workspace or Path(tempfile.mkdtemp(prefix="bench-ws-"))
        #: Folders removed when it stops.
        self.remove = [self.workspace]
        command = [
            str(BIN / "python-mcp-server"),
            "--port",
            str(self.port),
            "--workspace-dir",
            str(self.workspace),
            "--log-level",
            os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            *args,
        ]
        if "MCP_AUTH_TOKEN" not in {**os.environ, **(env or {})}:
            command.append("--no-auth")  # loopback only: the bearer check is not measured
        env = {**os.environ, **(env or {})}
        if wrap is None and "MCP_STATE_DIR" not in env:
            # Its own state folder, removed with it: the default one (under
            # ~/.local/state) would outlive every benchmark run.
            state = Path(tempfile.mkdtemp(prefix="bench-state-"))
            env["MCP_STATE_DIR"] = str(state)
            self.remove.append(state)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            wrap(command) if wrap is not None else command,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for folder in self.remove:
            shutil.rmtree(folder, ignore_errors=True)


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000.0


def percentiles_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of samples in seconds, as milliseconds (nearest rank)."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "n": 0}

    def rank(q: float) -> float:
        index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
        return round(ordered[index] * 1000.0, 1)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "n": len(ordered)}


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    """Seconds one awaited piece of work took."""
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


def structured(result: Any) -> dict[str, Any]:
    """A tool call's structured result; a tool error stops the benchmark."""
    assert not result.is_error, result
    return dict(result.structured_content or {})


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_uss(pid: int) -> int:
    """Unique memory (USS) summed over a process tree, in bytes."""
    total = 0
    for process in process_tree(pid):
        try:
            total += process.memory_full_info().uss
        except psutil.Error:
            continue
    return total


def frames(pid: int) -> set[int]:
    """The physical pages (frame numbers) a process maps now, from /proc/pid/pagemap.

    Frame numbers are readable by root only (others read zeros): empty otherwise."""
    found: set[int] = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if fields[-1] == "[vsyscall]":
                continue
            low, high = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(low // 4096 * 8)
            data = pagemap.read((high - low) // 4096 * 8)
            for (entry,) in struct.iter_unpack("Q", data):
                if entry >> 63 and entry & PFN_MASK:  # present, with a frame number
                    found.add(entry & PFN_MASK)
    return found


def unique_by_group(groups: Sequence[Sequence[int]], others: Sequence[int]) -> list[int] | None:
    """Bytes of the pages each group of processes alone maps, a page shared within the
    group counted once, one shared with any other group or with ``others`` not at all
    (the memory a session's process tree costs). None where frames cannot be read."""
    owner: dict[int, int] = {}  # frame -> group index, or -1 when shared between groups
    for index, pids in enumerate([*groups, others]):
        for pid in pids:
            try:
                mapped = frames(pid)
            except OSError:
                continue
            for frame in mapped:
                if owner.get(frame, index) != index:
                    owner[frame] = -1
                else:
                    owner[frame] = index
    counts = [0] * len(groups)
    for index in owner.values():
        if 0 <= index < len(groups):
            counts[index] += 1
    if not any(counts):
        return None
    return [count * 4096 for count in counts]


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds summed over a process tree."""
    total = 0.0
    for process in process_tree(pid):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _python(process: psutil.Process | None) -> bool:
    return process is not None and "python" in os.path.basename(process.exe())


def _reaper(process: psutil.Process | None) -> bool:
    return process is not None and process.exe().startswith("/memfd:reaper")


def templates(server_pid: int) -> list[int]:
    """The template processes proper: the server's child (unsandboxed), or the child of
    the pid 1 that bubblewrap started (sandboxed; not that pid 1 nor the kernels). That
    pid 1 is Python, or the reaper program (``infra/kernels/reaper.py``) whose parent is
    bubblewrap; a kernel's parent is its init, a reaper whose parent is a reaper."""
    found = []
    for process in process_tree(server_pid)[1:]:
        try:
            if '"mode": "template"' not in " ".join(process.cmdline()):
                continue
            parent = process.parent()
            if parent is None:
                continue
            grandparent = parent.parent()
            if (
                parent.pid == server_pid
                or (_python(parent) and not _python(grandparent))
                or (_reaper(parent) and not _reaper(grandparent))
            ):
                found.append(process.pid)
        except psutil.Error:
            continue
    return found


async def pool_state(client: Client[Any]) -> tuple[int | None, int | None]:
    """The kernels ready in the pool and its depth, as health_check reports them."""
    metrics = structured(await client.call_tool("health_check", {}))["metrics"]
    depth = metrics.get("kernel_pool_depth")
    if depth is None:  # a server that does not report its pool
        return None, None
    return metrics.get("kernel_pool_ready", 0), depth  # a zero is left out of the answer
