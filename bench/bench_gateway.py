"""``1+1`` through Jupyter Kernel and Enterprise Gateways against a local kernel, one run.

Session level (in process, ``KernelSession.execute``): a local kernel; a stock Kernel
Gateway with this client's quick ACKs (the default); the same with quick ACKs off (what a
naive websocket client gets); and a gateway started with the no-delay connection class
from ``deploy/kernel-gateway``; and a stock Enterprise Gateway (its start time is printed
too). Client level: ``run_python_code("1+1")`` over streamable
HTTP against the ``python-mcp-server`` command, local vs ``--gateway-url`` (each gateway).
Rounds are interleaved across configurations, so load on a shared machine hits all of
them alike. Prints medians and each ratio against its local baseline (target: <= 1.3x).

Needs the gateway venvs, made on first use by the test fixtures (``.gateway-venv``,
``.gateway-venv-eg``). Run: ``.venv/bin/python bench/bench_gateway.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from fastmcp import Client  # noqa: E402
from tests.gateway.enterprise_gateway import (  # noqa: E402
    ENTERPRISE_GATEWAY_VENV,
    start_enterprise_gateway,
)
from tests.gateway.kernel_gateway import (  # noqa: E402
    KERNEL_GATEWAY_VENV,
    KernelGatewayProcess,
    start_kernel_gateway,
)

from _common import ServerProcess, median_ms, wait_port  # noqa: E402
from python_mcp_server.infra.kernels import websocket_channels  # noqa: E402
from python_mcp_server.server.services import build_services  # noqa: E402
from python_mcp_server.settings import Settings  # noqa: E402

WARMUP = 10


async def interleaved_sessions(named: dict[str, Settings], rounds: int) -> dict[str, float]:
    """Median ms of ``1+1`` per configuration, rounds interleaved so load hits all alike."""
    services = {name: build_services(settings) for name, settings in named.items()}
    for service in services.values():
        await service.start()
    try:
        sessions = {
            name: await service.sessions.get_or_create_default(None)
            for name, service in services.items()
        }
        samples: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(rounds + WARMUP):
            for name, session in sessions.items():
                started = time.perf_counter()
                outcome = await session.execute("1+1")
                samples[name].append(time.perf_counter() - started)
                assert outcome.result.result == "2", outcome.result
        for name, service in services.items():
            if service.launcher.shared_sessions:
                await service.sessions.delete(sessions[name].session_id)
        return {name: median_ms(values[WARMUP:]) for name, values in samples.items()}
    finally:
        for service in services.values():
            await service.aclose()


def gateway_settings(gateway: KernelGatewayProcess, **extra: Any) -> Settings:
    return Settings(
        workspace_dir=gateway.workspace,
        state_dir=Path(tempfile.mkdtemp(prefix="bench-gw-state-")),
        gateway_url=gateway.url,
        gateway_token=gateway.token,
        gateway_namespace=f"bench-{time.time_ns()}",
        session_idle_timeout=0,
        **extra,
    )


@contextmanager
def quickack(enabled: bool) -> Iterator[None]:
    saved = websocket_channels._TCP_QUICKACK
    websocket_channels._TCP_QUICKACK = saved if enabled else None
    try:
        yield
    finally:
        websocket_channels._TCP_QUICKACK = saved


async def interleaved_http(servers: dict[str, ServerProcess], rounds: int) -> dict[str, float]:
    """Median ms of ``run_python_code("1+1")`` per server, calls interleaved."""
    clients: dict[str, Client[Any]] = {}
    for name, server in servers.items():
        wait_port(server.port, 60)
        clients[name] = Client(server.url)
        await clients[name].__aenter__()
    try:
        samples: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(rounds + WARMUP):
            for name, client in clients.items():
                started = time.perf_counter()
                result = await client.call_tool("run_python_code", {"code": "1+1"})
                samples[name].append(time.perf_counter() - started)
                assert result.structured_content is not None
                assert result.structured_content["result"] == "2"
        for client in clients.values():
            await client.call_tool("delete_session", {"session_id": "default"})
        return {name: median_ms(values[WARMUP:]) for name, values in samples.items()}
    finally:
        for client in clients.values():
            await client.__aexit__(None, None, None)


async def main(rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    for venv in (KERNEL_GATEWAY_VENV, ENTERPRISE_GATEWAY_VENV):
        command, problem = venv.ensure()
        if command is None:
            raise SystemExit(f"no gateway venv at {venv.path}: {problem}")
    started = time.perf_counter()
    stock = start_kernel_gateway(root / "stock")
    kg_start = time.perf_counter() - started
    nodelay = start_kernel_gateway(root / "nodelay", nodelay=True)
    started = time.perf_counter()
    enterprise = start_enterprise_gateway(root / "enterprise")
    eg_start = time.perf_counter() - started
    try:
        local_settings = Settings(
            workspace_dir=Path(tempfile.mkdtemp(prefix="bench-local-")), session_idle_timeout=0
        )
        session = await interleaved_sessions(
            {
                "local": local_settings,
                "stock": gateway_settings(stock),
                "nodelay": gateway_settings(nodelay),
                "enterprise": gateway_settings(enterprise),
            },
            rounds,
        )
        with quickack(False):
            naive = await interleaved_sessions({"naive": gateway_settings(stock)}, rounds)
        env = {"MCP_GATEWAY_TOKEN": stock.token, "MCP_GATEWAY_NAMESPACE": "bench-http"}
        eg_env = {"MCP_GATEWAY_TOKEN": enterprise.token, "MCP_GATEWAY_NAMESPACE": "bench-http"}
        servers = {
            "local": ServerProcess(),
            "gateway": ServerProcess("--gateway-url", stock.url, env=env),
            "enterprise": ServerProcess("--gateway-url", enterprise.url, env=eg_env),
        }
        try:
            http = await interleaved_http(servers, rounds)
        finally:
            for server in servers.values():
                server.stop()
    finally:
        stock.stop()
        nodelay.stop()
        enterprise.stop()

    local = session["local"]
    print(
        f"gateway start (until its REST API answers): Kernel Gateway {kg_start:.2f} s, "
        f"Enterprise Gateway {eg_start:.2f} s"
    )
    print(f"1+1, median of {rounds} rounds after {WARMUP} warm-up, interleaved, same run")
    print("session level (KernelSession.execute):")
    rows = [
        ("local kernel", local),
        ("gateway, quick ACKs (default)", session["stock"]),
        ("gateway, quick ACKs off", naive["naive"]),
        ("gateway with no-delay + quick ACKs", session["nodelay"]),
        ("enterprise gateway, quick ACKs", session["enterprise"]),
    ]
    for name, value in rows:
        print(f"  {name:<38} {value:8.2f} ms   {value / local:5.2f}x local")
    print("client level (run_python_code over streamable HTTP):")
    print(f"  {'local kernel':<38} {http['local']:8.2f} ms")
    print(
        f"  {'gateway (stock), quick ACKs':<38} {http['gateway']:8.2f} ms   "
        f"{http['gateway'] / http['local']:5.2f}x local   (target <= 1.30x)"
    )
    print(
        f"  {'enterprise gateway (stock)':<38} {http['enterprise']:8.2f} ms   "
        f"{http['enterprise'] / http['local']:5.2f}x local   (target <= 1.30x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
