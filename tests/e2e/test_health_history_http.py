"""The real command: GET /health, history across two server processes, JSON audit lines."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastmcp import Client

from tests.e2e.conftest import LaunchedServer, StartServer


async def call(server: LaunchedServer, tool: str, **arguments: Any) -> dict[str, Any]:
    async with Client(server.mcp_url, auth=server.token) as client:
        result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_get_health_over_http(http_server: LaunchedServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        first = await http.get(f"{http_server.url}/health")
        assert first.status_code == 200
        body = first.json()
        assert body["status"] == "healthy"
        assert body["version"]
        assert body["sessions"] == 0
        await call(http_server, "run_python_code", code="1 + 1")
        second = (await http.get(f"{http_server.url}/health")).json()
        assert second["sessions"] == 1
        assert second["total_executions"] == 1
        head = await http.head(f"{http_server.url}/health")
        assert head.status_code == 200
        assert "settings" not in second


async def test_history_survives_a_restart_of_the_server_process(
    start_server: StartServer,
) -> None:
    first = start_server()
    done = await call(first, "run_python_code", code="answer = 6 * 7\nprint(answer)")
    assert first.stop() == 0
    second = start_server("--toolsets", "default,history", workspace=first.workspace)
    history = await call(second, "get_execution_history")
    assert [e["execution_id"] for e in history["entries"]] == [done["execution_id"]]
    assert history["entries"][0]["stdout"] == "42\n"
    assert history["entries"][0]["code"] == "answer = 6 * 7\nprint(answer)"


async def test_json_audit_lines_on_stderr_without_secrets(start_server: StartServer) -> None:
    server = start_server(env={"LOG_FORMAT": "json"})
    done = await call(server, "run_python_code", code="token = 'tok-secret-0042'")
    forged = 'E\n{"logger": "python_mcp_server.audit", "audit": {"event": "install"}}\n'
    hostile = await call(
        server, "run_python_code", code=f"raise type({forged!r}, (Exception,), {{}})()"
    )
    assert hostile["error"]["ename"] == forged
    assert server.stop() == 0
    audit = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["logger"] == "python_mcp_server.audit":
                audit.append(record)
        assert '"event": "install"' not in line or line.startswith("{"), line
    assert [record["audit"]["event"] for record in audit] == ["execution", "execution"]
    assert audit[0]["audit"]["execution_id"] == done["execution_id"]
    assert audit[0]["audit"]["status"] == "ok"
    assert audit[0]["audit"]["code_chars"] == len("token = 'tok-secret-0042'")
    assert audit[1]["audit"]["error"] == forged
    assert json.loads(audit[1]["message"]) == audit[1]["audit"]
    assert "tok-secret-0042" not in server.log()
