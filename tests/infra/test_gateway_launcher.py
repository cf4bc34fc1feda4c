"""Gateway launcher pieces that need no gateway: kernel ids, URLs, events, refusals."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastmcp import Client

from python_mcp_server.infra.kernels.gateway import GatewayConfig, session_kernel_id
from python_mcp_server.infra.kernels.websocket_channels import lifecycle_event
from python_mcp_server.server.app import build_server
from python_mcp_server.settings import Settings
from tests.helpers import free_port, tool_error


def test_session_kernel_ids_are_stable_v4_uuids_per_namespace() -> None:
    first = session_kernel_id("team-a", "default")
    assert first == session_kernel_id("team-a", "default")
    # Enterprise Gateway's check of a client's KERNEL_ID: it must survive as a v4 UUID.
    assert str(uuid.UUID(first, version=4)) == first
    others = {session_kernel_id("team-b", "default"), session_kernel_id("team-a", "other")}
    assert first not in others
    assert len(others) == 2


def test_websocket_url_follows_the_scheme() -> None:
    plain = GatewayConfig(url="http://gw:8888/", token=None, namespace="n")
    assert plain.websocket_url == "ws://gw:8888"
    assert plain.headers == {}
    secure = GatewayConfig(url="https://gw.example/base", token="t", namespace="n")
    assert secure.websocket_url == "wss://gw.example/base"
    assert secure.headers == {"Authorization": "token t"}


def message(msg_type: str, content: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    return {"header": {"msg_type": msg_type}, "parent_header": parent, "content": content}


def test_lifecycle_events_are_read_from_gateway_messages() -> None:
    restarting = message("status", {"execution_state": "restarting"}, {})
    assert lifecycle_event("iopub", restarting) == "restarting"
    assert lifecycle_event("iopub", message("status", {"execution_state": "dead"}, {})) == "dead"
    busy = message("status", {"execution_state": "busy"}, {"msg_id": "x"})
    assert lifecycle_event("iopub", busy) is None
    shutdown = message("shutdown_reply", {"status": "ok", "restart": False}, {"msg_id": "g"})
    assert lifecycle_event("iopub", shutdown) == "shutdown"
    restart = message("shutdown_reply", {"status": "ok", "restart": True}, {"msg_id": "g"})
    assert lifecycle_event("iopub", restart) == "restart"
    assert lifecycle_event("shell", shutdown) is None


async def test_an_unreachable_gateway_is_a_gateway_error(tmp_path: Path) -> None:
    settings = Settings(
        workspace_dir=tmp_path / "ws",
        gateway_url=f"http://127.0.0.1:{free_port()}",
        gateway_token="secret-token",
        session_idle_timeout=0,
    )
    async with Client(build_server(settings)) as client:
        text = await tool_error(client, "run_python_code", {"code": "1"})
        assert text.startswith("GATEWAY_ERROR:")
        assert "could not reach the gateway" in text
        assert "secret-token" not in text
        text = await tool_error(client, "create_session", {"session_id": "s"})
        assert text.startswith("GATEWAY_ERROR:")
