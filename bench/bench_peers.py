"""Our server beside its peers, on the same work, in one run on this machine.

Peers, each installed on first use in its own virtual environment under ``.bench-venvs/``
(git-ignored):

- ``pypi``: the PyPI ``python-mcp-server==0.6.2`` (one active session at a time);
- ``jupyter``: ``jupyter-mcp-server`` beside the Jupyter server it drives (a notebook per
  session, ``execute_code`` in its kernel).

Ours runs twice: ``ours`` with the defaults (sandboxed when bubblewrap works) and
``ours-fork`` unsandboxed (kernels forked from the preloaded template).

Figures: warm ``1+1`` p50/p95/p99; new session to first answer, sequential and in bursts
of 10; calls/s at 4/8/16 clients (each with its own session where the server has
sessions); unique memory per session, plain and after importing the data stack; the first
data import in a new session; the size of ``tools/list``.

Run: ``.venv/bin/python bench/bench_peers.py --quick [--peers ours,ours-fork,pypi,jupyter]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import psutil
from fastmcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from _common import free_port, percentiles_ms, structured, timed, wait_port

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench-venvs"
PYTHON = "/root/.pyenv/versions/3.11.7/bin/python3.11"
PEER_PACKAGES = {
    "pypi": ["python-mcp-server==0.6.2", "pandas", "matplotlib"],
    "jupyter": [
        "jupyter-mcp-server==2.2.4",
        "jupyterlab",
        "jupyter-collaboration",
        "ipykernel",
        "pandas",
        "matplotlib",
    ],
}
DATA_IMPORT = "import pandas, matplotlib.pyplot"
MIB = 1024 * 1024


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    return found


def ensure_venv(name: str) -> Path:
    """The peer's venv, created and installed on first use."""
    venv = VENVS / name
    marker = venv / ".installed"
    if marker.exists():
        return venv
    python = PYTHON if Path(PYTHON).exists() else sys.executable
    subprocess.run([uv(), "venv", "-q", str(venv), "--python", python], check=True)
    subprocess.run(
        [uv(), "pip", "install", "-q", "--python", str(venv / "bin/python"), *PEER_PACKAGES[name]],
        check=True,
        timeout=900,
    )
    marker.write_text("ok")
    return venv


class Peer:
    """One server under test: how to start it and how to do each piece of work."""

    name = "peer"
    sessions = True

    def __init__(self) -> None:
        self.workspace = Path(tempfile.mkdtemp(prefix=f"peer-{self.name}-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = Path(tempfile.gettempdir()) / f"bench-{self.name}-{len(self.processes)}.log"
        with log.open("wb") as out:
            self.processes.append(
                subprocess.Popen(
                    argv,
                    cwd=self.workspace,
                    env={**os.environ, **(env or {})},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.workspace, ignore_errors=True)

    def root_pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def run(self, client: Client[Any], code: str, session: str | None) -> None:
        raise NotImplementedError

    async def create(self, client: Client[Any], session: str) -> None:
        raise NotImplementedError

    async def delete(self, client: Client[Any], session: str) -> None:
        raise NotImplementedError


class Ours(Peer):
    name = "ours"
    env: ClassVar[dict[str, str]] = {}

    def start(self) -> None:
        command = str(Path(sys.executable).parent / "python-mcp-server")
        argv = [command, "--port", str(self.port), "--workspace-dir", str(self.workspace)]
        self.spawn(argv, {"MCP_SESSION_IDLE_TIMEOUT": "0", "MCP_MAX_SESSIONS": "40", **self.env})
        wait_port(self.port, 120)

    async def run(self, client: Client[Any], code: str, session: str | None) -> None:
        args: dict[str, Any] = {"code": code}
        if session:
            args["session_id"] = session
        answer = structured(await client.call_tool("run_python_code", args))
        assert answer["status"] == "ok", answer

    async def create(self, client: Client[Any], session: str) -> None:
        structured(await client.call_tool("create_session", {"session_id": session}))

    async def delete(self, client: Client[Any], session: str) -> None:
        await client.call_tool("delete_session", {"session_id": session})


class OursFork(Ours):
    name = "ours-fork"
    env: ClassVar[dict[str, str]] = {"MCP_SANDBOX": "none"}


class PyPI(Peer):
    """python-mcp-server 0.6.2: sessions exist, but calls run in the one active session."""

    name = "pypi"
    sessions = False  # concurrent clients share the active session

    def start(self) -> None:
        venv = ensure_venv("pypi")
        argv = [str(venv / "bin/python-mcp-server"), "--transport", "http"]
        self.spawn([*argv, "--port", str(self.port), "--workspace", str(self.workspace)])
        wait_port(self.port, 120)

    async def run(self, client: Client[Any], code: str, session: str | None) -> None:
        if session:
            await client.call_tool("switch_session", {"session_id": session})
        result = await client.call_tool("run_python_code", {"code": code})
        assert not result.is_error, result

    async def create(self, client: Client[Any], session: str) -> None:
        assert not (await client.call_tool("create_session", {"session_id": session})).is_error

    async def delete(self, client: Client[Any], session: str) -> None:
        await client.call_tool("switch_session", {"session_id": "default"})
        await client.call_tool("delete_session", {"session_id": session})


class Jupyter(Peer):
    """jupyter-mcp-server with a Jupyter server: a session is a notebook with its kernel."""

    name = "jupyter"
    sessions = False  # execute_code runs in the current notebook's kernel

    def start(self) -> None:
        venv = ensure_venv("jupyter")
        jupyter_port, token = free_port(), secrets.token_hex(16)
        self.spawn(
            [
                str(venv / "bin/jupyter-lab"),
                "--no-browser",
                "--allow-root",
                f"--port={jupyter_port}",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={self.workspace}",
            ]
        )
        wait_port(jupyter_port, 300)
        self.spawn(
            [
                str(venv / "bin/jupyter-mcp-server"),
                "start",
                "--transport",
                "streamable-http",
                "--port",
                str(self.port),
                "--jupyter-url",
                f"http://127.0.0.1:{jupyter_port}",
                "--jupyter-token",
                token,
                "--insecure-mcp-noauth",
            ]
        )
        wait_port(self.port, 120)
        self.current: str | None = None

    async def run(self, client: Client[Any], code: str, session: str | None) -> None:
        if session and session != self.current:
            await self.use(client, session, "connect")
        result = await client.call_tool("execute_code", {"code": code})
        assert not result.is_error, result

    async def use(self, client: Client[Any], session: str, mode: str) -> None:
        arguments = {"notebook_name": session, "notebook_path": f"{session}.ipynb"}
        result = await client.call_tool("use_notebook", {**arguments, "mode": mode})
        assert not result.is_error, result
        self.current = session

    async def create(self, client: Client[Any], session: str) -> None:
        await self.use(client, session, "create")

    async def delete(self, client: Client[Any], session: str) -> None:
        await client.call_tool("unuse_notebook", {"notebook_name": session})
        self.current = None


PEERS: dict[str, type[Peer]] = {
    "ours": Ours,
    "ours-fork": OursFork,
    "pypi": PyPI,
    "jupyter": Jupyter,
}


def is_template(process: psutil.Process, command: str) -> bool:
    """Our fork template (its kernels carry its command line, but their parent is it)."""
    marker = '"mode": "template"'
    parent = process.parent()
    return marker in command and (parent is None or marker not in " ".join(parent.cmdline()))


def kernel_uss(roots: list[int]) -> int:
    """USS summed over every kernel process under the roots (sandbox wrappers included)."""
    total = 0
    for root in roots:
        try:
            tree = psutil.Process(root).children(recursive=True)
        except psutil.Error:
            continue
        for process in tree:
            try:
                command = " ".join(process.cmdline())
                if "ipykernel" not in command or is_template(process, command):
                    continue
                total += process.memory_full_info().uss
            except psutil.Error:
                continue
    return total


async def quiet(_message: Any) -> None:
    """Drop the servers' log notifications (one peer sends several per call)."""


class Bench:
    """The work, section by section: a section a peer cannot do is noted, not fatal."""

    def __init__(self, peer: Peer, client: Client[Any], args: argparse.Namespace) -> None:
        self.peer, self.client, self.args = peer, client, args
        self.live: set[str] = set()

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
        for b in range(self.args.bursts):
            await asyncio.sleep(self.args.settle)
            names = [f"b{b}x{i}" for i in range(10)]
            samples += await asyncio.gather(*(timed(lambda n=n: self.new(n)) for n in names))
            await self.cleanup()
        return {"burst10_ms": percentiles_ms(samples)}

    async def first_import(self) -> dict[str, Any]:
        samples = []
        for i in range(self.args.import_rounds):
            await asyncio.sleep(self.args.settle / 2)
            samples.append(await timed(lambda i=i: self.new(f"i{i}", DATA_IMPORT)))
            await self.cleanup()
        return {"first_data_import_ms": percentiles_ms(samples)}

    async def memory(self) -> dict[str, Any]:
        """What 4 more sessions add to the USS of every kernel process, per session."""
        names = [f"m{i}" for i in range(4)]
        before = kernel_uss(self.peer.root_pids())
        for name in names:
            await self.new(name)
        await asyncio.sleep(self.args.settle)  # a pool refills to where it was
        plain = kernel_uss(self.peer.root_pids())
        for name in names:
            await self.peer.run(self.client, DATA_IMPORT, name)
        loaded = kernel_uss(self.peer.root_pids())
        await self.cleanup()
        return {
            "uss_per_session_mb": round((plain - before) / len(names) / MIB, 1),
            "uss_per_session_data_mb": round((loaded - before) / len(names) / MIB, 1),
        }

    async def throughput(self, clients: int) -> dict[str, Any]:
        names = [f"c{clients}x{i}" for i in range(clients)] if self.peer.sessions else []
        for name in names:
            await self.new(name)
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


async def measure(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"peer": peer.name}
    async with Client(peer.url, timeout=300, log_handler=quiet) as client:
        bench = Bench(peer, client, args)
        sections: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
            ("tools", bench.tools),
            ("warm", bench.warm),
            ("sequential", bench.sequential),
            ("bursts", bench.bursts),
            ("first_import", bench.first_import),
            ("memory", bench.memory),
            *[(f"clients{n}", lambda n=n: bench.throughput(n)) for n in (4, 8, 16)],
        ]
        for name, section in sections:
            await asyncio.sleep(args.settle)
            try:
                figures.update(await asyncio.wait_for(section(), args.section_timeout))
            except Exception as exc:  # a peer that cannot do it: say why, go on
                figures[f"{name}_error"] = f"{type(exc).__name__}: {exc}"[:200]
                await bench.cleanup()
    return figures


async def run_peer(name: str, args: argparse.Namespace) -> dict[str, Any]:
    peer = PEERS[name]()
    try:
        peer.start()
        return await asyncio.wait_for(measure(peer, args), args.peer_timeout)
    except Exception as exc:  # one peer failing must not lose the others' figures
        return {"peer": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        peer.stop()


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
    args.peer_timeout = 1200.0 if args.quick else 7200.0
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = []
    for name in [n for n in args.peers.split(",") if n]:
        figures = asyncio.run(run_peer(name, args))
        print(json.dumps(figures), flush=True)
        results.append(figures)
    ours = next((r for r in results if r.get("peer") == "ours"), None)
    for figures in results:
        if ours is None or figures is ours:
            continue
        parts = []
        for key in ("warm_1plus1_ms", "new_session_ms", "burst10_ms", "first_data_import_ms"):
            if key in figures and key in ours:
                ratio = figures[key]["p50"] / max(ours[key]["p50"], 0.1)
                parts.append(f"{key} p50 {ratio:.2f}x")
        print(f"{figures['peer']} / ours: " + ", ".join(parts))
    if args.json:
        args.json.write_text(json.dumps({"load": load, "results": results}, indent=2))


if __name__ == "__main__":
    main()
