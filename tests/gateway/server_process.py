"""The python-mcp-server command pointed at a test gateway, and an MCP client to it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from fastmcp import Client

from tests.gateway.conftest import Replicas
from tests.helpers import free_port

COMMAND = str(Path(sys.executable).parent / "python-mcp-server")
REPLICA_TOKEN = "replica-suite-token-7c1d"


class ServerProcess:
    """The python-mcp-server command on a free port, pointed at the gateway.

    By default the replicas share one bearer token (``REPLICA_TOKEN``); ``env`` adds or
    replaces variables (e.g. a tokens file naming principals instead).
    """

    def __init__(
        self, replicas: Replicas, state: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.port = free_port()
        environment = {
            **os.environ,
            "MCP_GATEWAY_TOKEN": replicas.gateway.token,
            "MCP_GATEWAY_NAMESPACE": replicas.namespace,
            # Replicas behind one balancer share one bearer token.
            "MCP_AUTH_TOKEN": REPLICA_TOKEN,
            # Clients that hold an mcp-session-id then need no sticky routing either.
            "FASTMCP_STATELESS_HTTP": "true",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [
                COMMAND,
                "--port",
                str(self.port),
                "--workspace-dir",
                str(replicas.gateway.workspace),
                "--state-dir",
                str(state),
                "--gateway-url",
                replicas.gateway.url,
                "--log-level",
                "WARNING",
            ],
            env=environment,
            stdout=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def wait_healthy(self, deadline: float = 180.0) -> None:
        """Return once ``/health`` answers; fail at once if the process ends meanwhile.

        The bound is generous: on a loaded 2-core machine importing the server alone can
        take tens of seconds, and a replica that never comes up fails the test here.
        """
        health = self.url.removesuffix("/mcp") + "/health"
        give_up = time.monotonic() + deadline
        with httpx.Client(timeout=10) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}")
                try:
                    if http.get(health).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > give_up:
                    raise TimeoutError(f"server on port {self.port} did not answer in {deadline} s")
                time.sleep(0.1)  # polls a process that has no readiness event to wait on

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


async def connect(server: ServerProcess, token: str = REPLICA_TOKEN) -> Client[Any]:
    """An MCP client connected to the server once it answers."""
    await asyncio.to_thread(server.wait_healthy)
    for _ in range(300):
        client: Client[Any] = Client(server.url, auth=token)
        try:
            await client.__aenter__()
            return client
        except Exception:
            if server.process.poll() is not None:
                raise
            await asyncio.sleep(0.1)
    raise TimeoutError(f"server on port {server.port} did not answer")
