"""Replicas as real processes: the ``python-mcp-server`` command on a free loopback port.

Every replica of a group points at the same gateway and namespace and takes the same bearer
token, as replicas behind one load balancer do; ``extra_env`` adds the shared services
(``MCP_DATABASE_URL``, ``MCP_REDIS_URL``). A replica can be killed (SIGKILL, as a crashed
machine) and started again on the same port and state folder. Its stderr goes to a file the
test can show when something fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.gateway.kernel_gateway import KernelGatewayProcess
from tests.helpers import NATIVE_TOOLSETS, free_port, wait_gone

COMMAND = str(Path(sys.executable).parent / "python-mcp-server")
BALANCED_TOKEN = "balanced-replicas-token-5e2a"


class ReplicaProcess:
    """One replica: start, wait until it answers, kill, start again on the same port."""

    def __init__(
        self,
        gateway: KernelGatewayProcess,
        namespace: str,
        state: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.gateway = gateway
        self.namespace = namespace
        self.state = state
        self.extra_env = dict(extra_env or {})
        self.port = free_port()
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """How nginx names this replica in ``$upstream_addr``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 240.0) -> None:
        """Start the command and return once its /health answers."""
        assert self.process is None or self.process.poll() is not None
        env = {
            **os.environ,
            "MCP_GATEWAY_TOKEN": self.gateway.token,
            "MCP_GATEWAY_NAMESPACE": self.namespace,
            "MCP_AUTH_TOKEN": BALANCED_TOKEN,
            # Clients holding an mcp-session-id need no affinity either.
            "FASTMCP_STATELESS_HTTP": "true",
            "MCP_TOOLSETS": NATIVE_TOOLSETS,
            **self.extra_env,
        }
        command = [
            COMMAND,
            "--port",
            str(self.port),
            "--workspace-dir",
            str(self.gateway.workspace),
            "--state-dir",
            str(self.state),
            "--gateway-url",
            self.gateway.url,
            "--log-level",
            "WARNING",
        ]
        self.starts += 1
        stderr = (self.state.parent / f"{self.state.name}-{self.starts}.log").open("wb")
        with stderr:
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise RuntimeError(f"replica exited with {code}:\n{self.log()}")
                try:
                    http.get(f"http://{self.address}/health").raise_for_status()
                    return
                except httpx.HTTPError:
                    time.sleep(0.05)
        raise TimeoutError(f"replica on port {self.port} did not answer:\n{self.log()}")

    def log(self) -> str:
        path = self.state.parent / f"{self.state.name}-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> set[int]:
        """SIGKILL by pid, as a machine that dies; return the processes it left running."""
        assert self.process is not None
        children = {p.pid for p in psutil.Process(self.process.pid).children(recursive=True)}
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        return wait_gone(children)

    def stop(self) -> int | None:
        """SIGTERM and the exit code; None when it was not running (killed before)."""
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
