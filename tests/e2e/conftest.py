"""End-to-end fixtures: the real ``python-mcp-server`` command on a free loopback port.

``start_server(*args, env=..., transport="http")`` launches the command in a fresh
workspace and returns a ``LaunchedServer``; at teardown the server gets SIGTERM and the
test fails if it did not exit or left any kernel process behind. Servers start as a user
starts them: HTTP requires the token the server made (``server.token``, ``server.headers``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from python_mcp_server.settings import default_state_dir
from tests.helpers import free_port, wait_gone
from tests.sandbox_support import fork_variables

COMMAND = str(Path(sys.executable).parent / "python-mcp-server")
#: A server that keeps no warm kernel (for tests of its HTTP front only).
NO_KERNELS = {"MCP_KERNEL_POOL_SIZE": "0"}
#: A raw JSON-RPC ``initialize`` and the headers streamable HTTP wants with it.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "e2e-test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@dataclass
class LaunchedServer:
    """A running server process and where to reach it."""

    process: subprocess.Popen[bytes]
    port: int
    workspace: Path
    log_path: Path
    kernels_seen: set[int] = field(default_factory=set)
    #: The server's environment (where a configured token or state folder is found).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The bearer token: MCP_AUTH_TOKEN when set, else the one the server made."""
        if self.env.get("MCP_AUTH_TOKEN"):
            return self.env["MCP_AUTH_TOKEN"]
        return self.token_file.read_text().strip()

    @property
    def token_file(self) -> Path:
        """Where the server keeps the token it made (its state folder)."""
        if self.env.get("MCP_STATE_DIR"):
            state = Path(self.env["MCP_STATE_DIR"])
        else:
            state = default_state_dir(self.workspace.resolve(), self.env)
        return state / "auth-token"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (the MCP endpoint is ``mcp_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def state(self) -> Path:
        """The server's state folder (the default: outside the workspace)."""
        return state_of(self.workspace)

    def kernel_pids(self) -> set[int]:
        """Kernel processes currently started by this server (its descendants)."""
        pids = set()
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return pids
        for child in children:
            try:
                if "ipykernel_launcher" in " ".join(child.cmdline()):
                    pids.add(child.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        self.kernels_seen |= pids
        return pids

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"server did not listen within {timeout} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the server and wait for it; returns its exit code."""
        self.kernel_pids()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def assert_gone(pids: set[int], timeout: float = 10.0) -> None:
    alive = wait_gone(pids, timeout)
    assert not alive, f"processes left running: {describe(alive)}"


def describe(pids: set[int]) -> str:
    """Each pid with its command line and parent, for a failure message."""
    described = []
    for pid in sorted(pids):
        try:
            process = psutil.Process(pid)
            described.append(f"{pid} (parent {process.ppid()}): {' '.join(process.cmdline())}")
        except psutil.Error:
            described.append(f"{pid} (gone)")
    return "; ".join(described)


def state_of(workspace: Path) -> Path:
    """The default state folder of a workspace, as a server started here computes it."""
    return default_state_dir(workspace.resolve(), os.environ)


StartServer = Callable[..., LaunchedServer]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Factory: ``start_server(*cli_args, env={...}, workspace=None, wait=True)``."""
    launched: list[LaunchedServer] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        workspace: Path | None = None,
        wait: bool = True,
    ) -> LaunchedServer:
        ws = workspace or tmp_path / f"ws{len(launched)}"
        ws.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = tmp_path / f"server{len(launched)}.log"
        full_env = fork_variables(
            {
                **os.environ,
                "MCP_SESSION_IDLE_TIMEOUT": "0",
                "MCP_KERNEL_PRELOAD": "none",  # plain kernels unless a test asks for the preload
                **(env or {}),
            }
        )
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [COMMAND, "--port", str(port), "--workspace-dir", str(ws), *args],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = LaunchedServer(
            process=process, port=port, workspace=ws, log_path=log_path, env=full_env
        )
        launched.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    # Stop every server before judging any, so one failure never leaves another running.
    codes = {
        index: server.stop()
        for index, server in enumerate(launched)
        if server.process.poll() is None
    }
    for index, code in codes.items():
        assert code == 0, f"server exited with {code}:\n{launched[index].log()}"
    assert_gone(set().union(*(server.kernels_seen for server in launched)))


@pytest.fixture
def http_server(start_server: StartServer) -> LaunchedServer:
    """One default server over streamable HTTP."""
    return start_server()
