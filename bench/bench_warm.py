"""Warm ``1+1`` against its floor, all measured in one run (issue 14).

Ours: ``run_python_code("1+1")`` on an existing session over the real MCP protocol, in
memory (``fastmcp.Client(server)``) and over streamable HTTP (the ``python-mcp-server``
command). The floor: a raw kernel round trip (an ``execute_request`` of ``1+1`` sent
straight over ZeroMQ, until its reply and its idle status, as our server waits) on an
equivalent kernel, plus a no-op FastMCP tool call over the same transport.

The raw kernel is started by our own kernel factory with the same settings as ours (the
same launcher, sandbox, preload and kernel arguments), so only the path around the kernel
differs. Every round calls each variant once, in a rotating order, so a load change on a
shared machine touches all of them alike. Besides wall time, the CPU each call cost is read
from ``/proc/<pid>/task/*/schedstat`` (nanoseconds) of the processes doing its work: the
server (or, in memory, this process, client included) and the kernel's process tree.
Processes that serve one variant only (the HTTP servers, the kernels) are also read over
the whole measured phase, which counts work a call leaves behind after its answer (queued
database writes) as well: the ``whole run`` column and CPU ratio.

Prints p50/p95 per variant, the CPU per call, and ``ours / (raw + no-op)`` per transport.

Run: ``.venv/bin/python bench/bench_warm.py [--rounds 200] [--sandbox auto|none]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
import zmq
import zmq.asyncio
from fastmcp import Client, FastMCP
from jupyter_client.session import Session

sys.path.insert(0, str(Path(__file__).parent))
from _common import NOOP_SERVER, ServerProcess, free_port, percentiles_ms, wait_port

DELIMITER = b"<IDS|MSG>"


def cpu_ns(pids: Iterable[int]) -> int:
    """CPU nanoseconds of every thread of these processes, as far as they still run."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                    total += int(stat.read().split()[0])
            except OSError:
                continue
    return total


def tree(pid: int) -> list[int]:
    root = psutil.Process(pid)
    return [root.pid, *(child.pid for child in root.children(recursive=True))]


class RawKernel:
    """A lean Jupyter client: execute_request on shell, wait for the reply and idle."""

    def __init__(self, info: dict[str, Any]) -> None:
        key = info["key"]
        self.session = Session(
            key=key.encode() if isinstance(key, str) else key,
            signature_scheme=str(info.get("signature_scheme", "hmac-sha256")),
        )
        self.context = zmq.asyncio.Context()
        self.shell = self.context.socket(zmq.DEALER)
        self.iopub = self.context.socket(zmq.SUB)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        for sock, channel in ((self.shell, "shell"), (self.iopub, "iopub")):
            port = info[f"{channel}_port"]
            if info["transport"] == "ipc":
                sock.connect(f"ipc://{info['ip']}-{port}")
            else:
                sock.connect(f"tcp://{info['ip']}:{port}")

    async def _receive(self, sock: zmq.asyncio.Socket) -> dict[str, Any]:
        frames = await sock.recv_multipart(copy=False)
        parts = [bytes(frame.bytes) for frame in frames]
        _, message = self.session.feed_identities(parts, copy=True)
        return self.session.deserialize(message, content=True, copy=True)

    async def request(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        message = self.session.msg(msg_type, content)
        msg_id = message["header"]["msg_id"]
        await self.shell.send_multipart(self.session.serialize(message))
        while True:
            reply = await self._receive(self.shell)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        while True:
            status = await self._receive(self.iopub)
            if (
                status["header"]["msg_type"] == "status"
                and status["parent_header"].get("msg_id") == msg_id
                and status["content"]["execution_state"] == "idle"
            ):
                return reply

    async def wait_ready(self, timeout: float) -> None:
        """kernel_info until its idle status arrives (IOPub subscribed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.request("kernel_info_request", {}), 1.0)
                return
            except asyncio.TimeoutError:
                continue
        raise TimeoutError("the raw kernel did not answer")

    async def execute(self, code: str) -> None:
        reply = await self.request(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": True,
                "stop_on_error": False,
            },
        )
        assert reply["content"]["status"] == "ok", reply

    def close(self) -> None:
        self.context.destroy(linger=0)


def start_noop_server(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", NOOP_SERVER, str(port)])


def noop_server() -> FastMCP:
    mcp = FastMCP("noop")

    @mcp.tool
    async def noop() -> str:
        return "ok"

    return mcp


class Variant:
    """One thing timed: its call, the processes whose CPU it costs (by part), its samples."""

    def __init__(self, name: str, call: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.call = call
        #: Part ("server", "kernel") to the processes doing it.
        self.parts: dict[str, list[int]] = {}
        self.wall: list[float] = []
        self.cpu: dict[str, list[int]] = {}
        #: CPU ns of each part when the measured rounds began, then over all of them.
        self.phase: dict[str, int] = {}

    async def once(self, record: bool) -> None:
        # This process's own part is read last before the call and first after it: reading
        # the other parts' /proc files costs this process CPU that is not the call's.
        order = sorted(self.parts, key=lambda part: os.getpid() in self.parts[part])
        before = {part: cpu_ns(self.parts[part]) for part in order} if record else {}
        started = time.perf_counter()
        await self.call()
        elapsed = time.perf_counter() - started
        if record:
            for part in reversed(order):
                self.cpu.setdefault(part, []).append(cpu_ns(self.parts[part]) - before[part])
            self.wall.append(elapsed)

    def p(self) -> dict[str, float]:
        return percentiles_ms(self.wall)

    def whole_run_ms(self, exclusive: set[str]) -> float | None:
        """CPU milliseconds per call over the whole measured phase, of the parts whose
        processes do nothing else (work a call leaves behind, such as queued database
        writes, counts too); None when a part is shared with another variant."""
        if not self.wall or any(part not in exclusive for part in self.parts):
            return None
        return sum(self.phase.values()) / len(self.wall) / 1e6

    def cpu_ms(self, part: str | None = None) -> float:
        """Mean CPU milliseconds per call, of one part or all."""
        parts = [part] if part is not None else list(self.cpu)
        return sum(sum(self.cpu.get(name, [])) / max(1, len(self.wall)) for name in parts) / 1e6


def check_two(result: Any) -> None:
    assert not result.is_error, result
    assert (result.structured_content or {}).get("result") == "2", result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sandbox", default=os.environ.get("MCP_SANDBOX", "auto"))
    parser.add_argument("--preload", default=os.environ.get("MCP_KERNEL_PRELOAD", "auto"))
    parser.add_argument("--transports", default="memory,http")
    args = parser.parse_args()
    transports = set(args.transports.split(","))

    scratch = Path(tempfile.mkdtemp(prefix="bench-warm-"))
    os.environ["XDG_STATE_HOME"] = str(scratch / "state")  # the HTTP server inherits it
    os.environ["MCP_SANDBOX"] = args.sandbox
    os.environ["MCP_KERNEL_PRELOAD"] = args.preload
    # Imported after the environment is set: settings read it.
    from python_mcp_server.server.app import build_server
    from python_mcp_server.server.services import build_services
    from python_mcp_server.settings import Settings

    workspace = scratch / "ws"
    workspace.mkdir()
    settings = Settings(workspace_dir=workspace, log_level="WARNING", kernel_pool_size=1)
    services = build_services(settings)
    server = build_server(settings, services)
    http_server = ServerProcess() if "http" in transports else None
    noop_port = free_port()
    noop_process = start_noop_server(noop_port) if "http" in transports else None
    raw: RawKernel | None = None
    try:
        async with Client(server) as ours_memory, Client(noop_server()) as noop_memory:
            factory = services.sessions._factory
            request = factory.launch_request(None, "bench-raw")
            raw_kernel = await factory.launcher.launch(request)
            raw = RawKernel(raw_kernel.connection_info)  # type: ignore[attr-defined]
            await raw.wait_ready(60)
            variants = [Variant("raw kernel", lambda: raw.execute("1+1"))]  # type: ignore[union-attr]
            assert raw_kernel.pid is not None
            variants[0].parts = {"kernel": tree(raw_kernel.pid)}

            async def ours_mem() -> None:
                check_two(await ours_memory.call_tool("run_python_code", {"code": "1+1"}))

            async def noop_mem() -> None:
                await noop_memory.call_tool("noop", {})

            check_two(await ours_memory.call_tool("run_python_code", {"code": "1+1"}))
            here = os.getpid()
            others = {raw_kernel.pid}
            others |= {http_server.process.pid} if http_server is not None else set()
            others |= {noop_process.pid} if noop_process is not None else set()
            mem_pids = [
                pid
                for child in psutil.Process(here).children()
                if child.pid not in others and child.pid != here
                for pid in tree(child.pid)
            ]
            if "memory" in transports:
                ours = Variant("ours, in memory", ours_mem)
                ours.parts = {"server": [here], "kernel": mem_pids}
                noop = Variant("no-op tool, in memory", noop_mem)
                noop.parts = {"server": [here]}
                variants += [ours, noop]
            if http_server is not None and noop_process is not None:
                wait_port(http_server.port)
                wait_port(noop_port)
                async with (
                    Client(http_server.url, timeout=60) as ours_http,
                    Client(f"http://127.0.0.1:{noop_port}/mcp") as noop_http,
                ):
                    check_two(await ours_http.call_tool("run_python_code", {"code": "1+1"}))

                    async def ours_h() -> None:
                        check_two(await ours_http.call_tool("run_python_code", {"code": "1+1"}))

                    async def noop_h() -> None:
                        await noop_http.call_tool("noop", {})

                    ours = Variant("ours, HTTP", ours_h)
                    server_pid = http_server.process.pid
                    ours.parts = {"server": [server_pid], "kernel": tree(server_pid)[1:]}
                    noop = Variant("no-op tool, HTTP", noop_h)
                    noop.parts = {"server": [noop_process.pid]}
                    await measure([*variants, ours, noop], args)
                    report([*variants, ours, noop], args)
            else:
                await measure(variants, args)
                report(variants, args)
            await raw_kernel.kill()
    finally:
        if raw is not None:
            raw.close()
        if noop_process is not None:
            noop_process.terminate()
            noop_process.wait(10)
        if http_server is not None:
            http_server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


async def measure(variants: list[Variant], args: argparse.Namespace) -> None:
    for index in range(args.warmup + args.rounds):
        if index == args.warmup:
            for variant in variants:
                variant.phase = {part: cpu_ns(pids) for part, pids in variant.parts.items()}
        shift = index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            await variant.once(record=index >= args.warmup)
    for variant in variants:
        variant.phase = {
            part: cpu_ns(pids) - variant.phase[part] for part, pids in variant.parts.items()
        }


def exclusive_parts(variants: list[Variant]) -> dict[str, set[str]]:
    """Per variant, the parts whose processes no other variant uses."""
    owners: dict[int, set[str]] = {}
    for variant in variants:
        for pids in variant.parts.values():
            for pid in pids:
                owners.setdefault(pid, set()).add(variant.name)
    return {
        variant.name: {
            part
            for part, pids in variant.parts.items()
            if all(owners[pid] == {variant.name} for pid in pids)
        }
        for variant in variants
    }


def report(variants: list[Variant], args: argparse.Namespace) -> None:
    by_name = {variant.name: variant for variant in variants}
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"sandbox={args.sandbox} preload={args.preload} rounds={args.rounds} load {load}")
    exclusive = exclusive_parts(variants)
    print(f"{'':24} {'p50 ms':>8} {'p95 ms':>8}   CPU ms/call: server  kernel   total   whole run")
    whole: dict[str, float | None] = {}
    for variant in variants:
        p = variant.p()
        server, kernel = variant.cpu_ms("server"), variant.cpu_ms("kernel")
        whole[variant.name] = variant.whole_run_ms(exclusive[variant.name])
        run = whole[variant.name]
        print(
            f"{variant.name:24} {p['p50']:8.2f} {p['p95']:8.2f}"
            f"   {server:18.2f} {kernel:7.2f} {variant.cpu_ms():7.2f}"
            f"   {'shared' if run is None else f'{run:9.2f}':>9}"
        )
    raw = by_name["raw kernel"]
    figures: dict[str, Any] = {"load": os.getloadavg(), "sandbox": args.sandbox}
    for transport in ("in memory", "HTTP"):
        ours, noop = by_name.get(f"ours, {transport}"), by_name.get(f"no-op tool, {transport}")
        if ours is None or noop is None:
            continue
        for q in ("p50", "p95"):
            ratio = ours.p()[q] / (raw.p()[q] + noop.p()[q])
            print(f"ratio ours / (raw + no-op), {transport}, {q}: {ratio:.2f}")
            figures[f"{transport} {q}"] = round(ratio, 3)
        cpu = ours.cpu_ms() / (raw.cpu_ms() + noop.cpu_ms())
        print(f"CPU ratio ours / (raw + no-op), {transport}, during the calls: {cpu:.2f}")
        figures[f"{transport} cpu"] = round(cpu, 3)
        parts = [whole[ours.name], whole[raw.name], whole[noop.name]]
        if all(value is not None for value in parts):
            a, b, c = (float(value or 0.0) for value in parts)
            print(f"CPU ratio ours / (raw + no-op), {transport}, whole run: {a / (b + c):.2f}")
            figures[f"{transport} cpu whole run"] = round(a / (b + c), 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
