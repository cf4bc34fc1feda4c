"""The official MCP SDK's low-level client (the one docs/clients/mcp-sdk.md shows) against
the real command with a token: it declares no tasks, so calls answer synchronously."""

from __future__ import annotations

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import StartServer

TOKEN = "sdk-token-0123456789"


async def test_sdk_streamable_http_client_with_a_token(start_server: StartServer) -> None:
    server = start_server(env={"MCP_AUTH_TOKEN": TOKEN, "MCP_KERNEL_POOL_SIZE": "0"})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        streamable_http_client(server.mcp_url, http_client=http) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert "run_python_code" in names
        result = await session.call_tool("run_python_code", {"code": "sum(range(10))"})
        assert not result.is_error
        assert result.structured_content is not None
        assert result.structured_content["result"] == "45"
