"""The real command over streamable HTTP: fastmcp client and raw JSON-RPC with httpx."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastmcp import Client

from tests.e2e.conftest import LaunchedServer

ACCEPT = {"Accept": "application/json, text/event-stream"}


async def test_fastmcp_client_over_http(http_server: LaunchedServer) -> None:
    async with Client(http_server.mcp_url, auth=http_server.token) as client:
        names = {tool.name for tool in await client.list_tools()}
        assert {"run_python_code", "create_session", "list_sessions", "health_check"} <= names
        await client.call_tool("run_python_code", {"code": "total = sum(range(10))"})
        result = await client.call_tool("run_python_code", {"code": "total"})
        assert result.structured_content is not None
        assert result.structured_content["result"] == "45"
        plot = await client.call_tool(
            "run_python_code",
            {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"},
        )
        assert [block.type for block in plot.content].count("image") == 1
        failure = await client.call_tool(
            "run_python_code", {"code": "1", "session_id": "missing"}, raise_on_error=False
        )
        assert failure.is_error
        assert failure.content[0].text.startswith("SESSION_NOT_FOUND:")  # type: ignore[union-attr]


def parse_rpc(response: httpx.Response) -> dict[str, Any]:
    """A JSON-RPC reply from a JSON body or the last SSE ``data:`` event that holds one."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return dict(response.json())
    replies = [
        json.loads(line[5:])
        for line in response.text.splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]
    replies = [r for r in replies if "id" in r]
    assert replies, response.text
    return dict(replies[-1])


def test_raw_json_rpc_over_httpx(http_server: LaunchedServer) -> None:
    url = http_server.mcp_url
    with httpx.Client(timeout=60, headers=http_server.headers) as http:
        init = http.post(
            url,
            headers=ACCEPT,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw-httpx", "version": "1"},
                },
            },
        )
        assert init.status_code == 200
        reply = parse_rpc(init)
        assert reply["result"]["serverInfo"]["name"] == "python-mcp-server"
        headers = dict(ACCEPT)
        if "mcp-session-id" in init.headers:
            headers["mcp-session-id"] = init.headers["mcp-session-id"]
        headers["mcp-protocol-version"] = reply["result"]["protocolVersion"]
        note = http.post(
            url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
        )
        assert note.status_code in (200, 202)

        listed = parse_rpc(
            http.post(
                url, headers=headers, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            )
        )
        tools = {tool["name"]: tool for tool in listed["result"]["tools"]}
        assert "outputSchema" not in tools["run_python_code"]  # results still structured

        def call(call_id: int, arguments: dict[str, Any]) -> dict[str, Any]:
            response = http.post(
                url,
                headers=headers,
                json={
                    "jsonrpc": "2.0",
                    "id": call_id,
                    "method": "tools/call",
                    "params": {"name": "run_python_code", "arguments": arguments},
                },
            )
            assert response.status_code == 200
            return dict(parse_rpc(response)["result"])

        call(3, {"code": "word = 'persisted'"})
        result = call(4, {"code": "word.upper()"})
        assert result["isError"] is False
        assert result["structuredContent"]["result"] == "'PERSISTED'"
        bad = call(5, {"code": "x", "timeout": -5})
        assert bad["isError"] is True
        assert bad["content"][0]["text"].startswith("INVALID_INPUT:")
        error = call(6, {"code": "raise ValueError('nope')"})
        assert error["isError"] is False
        assert error["structuredContent"]["status"] == "error"
        assert error["structuredContent"]["error"]["ename"] == "ValueError"
