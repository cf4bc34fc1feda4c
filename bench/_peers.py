"""The servers bench_peers.py compares: how each starts, runs code, makes and ends sessions,
which of its processes are kernels, and when it is quiet.

Peers other than ours are installed on first use in their own virtual environment under
``.bench-venvs/`` (git-ignored). Every ``run`` returns only once the code has finished and
its answer is the one expected: a peer that answers early or hides an error in its text
is held to the same work as ours.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import psutil
from fastmcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from _common import free_port, pool_state, structured, templates, wait_port

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
#: Our state folder for a workspace (``<state root>/<workspace name>-<hash>``).
STATE_ROOT = Path.home() / ".local/state/python-mcp-server"
#: How long a quiet peer may take to refill its pool before a section starts anyway.
QUIET_LIMIT = 120.0


def uv() -> str:
    return shutil.which("uv") or str(Path(sys.executable).parent / "uv")


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


def expected(code: str, text: str) -> None:
    """``1+1`` answers 2; no code of the benchmark raises."""
    assert "Traceback" not in text, text[:300]
    assert "Error" not in text, text[:300]
    if code == "1+1":
        assert text.strip().strip("'\"[]") == "2", text[:300]


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

    def kernels(self) -> list[psutil.Process]:
        """Every kernel process under the peer (what a session costs in memory)."""
        found = []
        for root in self.processes:
            try:
                tree = psutil.Process(root.pid).children(recursive=True)
            except psutil.Error:
                continue
            for process in tree:
                try:
                    if "ipykernel" in " ".join(process.cmdline()):
                        found.append(process)
                except psutil.Error:
                    continue
        return found

    async def quiet(self, client: Client[Any]) -> dict[str, Any]:
        """Wait until the peer's own background work is done; what it reports."""
        return {}

    async def run(self, client: Client[Any], code: str, session: str | None) -> None:
        raise NotImplementedError

    async def create(self, client: Client[Any], session: str) -> None:
        raise NotImplementedError

    async def delete(self, client: Client[Any], session: str) -> None:
        raise NotImplementedError


class Ours(Peer):
    """Our server with its defaults (as root: bubblewrap sandbox, kernels forked from a
    sandboxed template, a pool of MCP_KERNEL_POOL_BURST ready kernels)."""

    name = "ours"
    env: ClassVar[dict[str, str]] = {}

    def start(self) -> None:
        command = str(Path(sys.executable).parent / "python-mcp-server")
        argv = [command, "--port", str(self.port), "--workspace-dir", str(self.workspace)]
        argv.append("--no-auth")  # loopback, as the peers run: the bearer check is not measured
        self.spawn(argv, {"MCP_SESSION_IDLE_TIMEOUT": "0", "MCP_MAX_SESSIONS": "40", **self.env})
        wait_port(self.port, 120)

    def stop(self) -> None:
        super().stop()
        for state in STATE_ROOT.glob(f"{self.workspace.name}-*"):
            shutil.rmtree(state, ignore_errors=True)

    def kernels(self) -> list[psutil.Process]:
        """Every process under the server but the fork template proper: the kernels with
        their sandbox processes (waiter, init), the pool's, and the template's wrappers
        (the same before and after, so they cancel in a difference)."""
        server = self.processes[0].pid
        skip = set(templates(server))
        try:
            tree = psutil.Process(server).children(recursive=True)
        except psutil.Error:
            return []
        return [p for p in tree if p.pid not in skip]

    async def quiet(self, client: Client[Any]) -> dict[str, Any]:
        """The pool full again (or QUIET_LIMIT passed): a refill is not another peer's load."""
        give_up = time.monotonic() + QUIET_LIMIT
        ready, depth = await pool_state(client)
        while ready is not None and depth and ready < depth and time.monotonic() < give_up:
            await asyncio.sleep(0.25)
            ready, depth = await pool_state(client)
        return {"pool_ready": ready, "pool_depth": depth}

    async def run(self, client: Client[Any], code: str, session: str | None) -> None:
        args: dict[str, Any] = {"code": code}
        if session:
            args["session_id"] = session
        answer = structured(await client.call_tool("run_python_code", args))
        assert answer["status"] == "ok", answer
        expected(code, str(answer.get("result") or ""))

    async def create(self, client: Client[Any], session: str) -> None:
        structured(await client.call_tool("create_session", {"session_id": session}))

    async def delete(self, client: Client[Any], session: str) -> None:
        await client.call_tool("delete_session", {"session_id": session})


class OursFork(Ours):
    """Ours without the sandbox: kernels forked from an unsandboxed template."""

    name = "ours-fork"
    env: ClassVar[dict[str, str]] = {"MCP_SANDBOX": "none"}


class PyPI(Peer):
    """python-mcp-server 0.6.2: sessions exist, but calls run in the one active session.

    It answers a call once the kernel has been silent for 1 s, with no result and
    ``Error processing kernel message`` in stderr, while the code still runs (a first
    data import, a kernel still starting). The code is done only when a later call
    answers in full (the kernel runs them in order), so ``run`` asks until one does."""

    name = "pypi"
    sessions = False  # concurrent clients share the active session
    EARLY = "Error processing kernel message"

    def start(self) -> None:
        venv = ensure_venv("pypi")
        argv = [str(venv / "bin/python-mcp-server"), "--transport", "http"]
        self.spawn([*argv, "--port", str(self.port), "--workspace", str(self.workspace)])
        wait_port(self.port, 120)

    async def call(self, client: Client[Any], code: str) -> dict[str, Any]:
        answer = structured(await client.call_tool("run_python_code", {"code": code}))
        return answer

    async def run(self, client: Client[Any], code: str, session: str | None) -> None:
        if session:
            await client.call_tool("switch_session", {"session_id": session})
        answer = await self.call(client, code)
        while self.EARLY in str(answer.get("stderr")):
            answer = await self.call(client, "'done'")  # runs once the code before it ended
            if self.EARLY not in str(answer.get("stderr")):
                expected("'done'", " ".join(answer.get("results") or []))
                return
        expected(code, f"{answer.get('stderr') or ''} {' '.join(answer.get('results') or [])}")

    async def create(self, client: Client[Any], session: str) -> None:
        structured(await client.call_tool("create_session", {"session_id": session}))

    async def delete(self, client: Client[Any], session: str) -> None:
        await client.call_tool("switch_session", {"session_id": "default"})
        await client.call_tool("delete_session", {"session_id": session})


class Jupyter(Peer):
    """jupyter-mcp-server with a Jupyter server: a session is a notebook with its kernel.
    An error in the code is an ordinary answer holding its traceback."""

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
        answer = (result.structured_content or {}).get("result") or []
        expected(code, " ".join(str(part) for part in answer))

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
