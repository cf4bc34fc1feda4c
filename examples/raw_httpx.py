"""Talk to python-mcp-server with plain JSON-RPC over HTTP (httpx), checking every answer.

    python examples/raw_httpx.py [http://127.0.0.1:8000/mcp]

The server requires a bearer token on HTTP (made at its first start); pass it in
MCP_AUTH_TOKEN, e.g. ``MCP_AUTH_TOKEN=$(python-mcp-server token) python examples/...``.

This is the streamable HTTP transport by hand: POST each JSON-RPC message to /mcp with
``Accept: application/json, text/event-stream``; a reply arrives as JSON or as one SSE event;
the ``mcp-session-id`` header of the initialize reply goes on every later request.
Exits 0 when every check passes, 1 (naming the failed check) otherwise.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import httpx

PROTOCOL_VERSION = "2025-06-18"


class CheckFailed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)
    print(f"ok   {what}")


class McpHttp:
    """A minimal streamable-HTTP MCP client: one JSON-RPC request per POST."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url
        self.client = client
        self.headers = {"Accept": "application/json, text/event-stream"}
        token = os.environ.get("MCP_AUTH_TOKEN")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.next_id = 1

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        self.next_id += 1
        response = self.client.post(self.url, json=body, headers=self.headers)
        response.raise_for_status()
        if "mcp-session-id" in response.headers:
            self.headers["mcp-session-id"] = response.headers["mcp-session-id"]
        message = self._parse(response)
        if "error" in message:
            raise CheckFailed(f"{method} returned a JSON-RPC error: {message['error']}")
        return dict(message["result"])

    def notify(self, method: str) -> int:
        body = {"jsonrpc": "2.0", "method": method}
        return self.client.post(self.url, json=body, headers=self.headers).status_code

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments})

    @staticmethod
    def _parse(response: httpx.Response) -> dict[str, Any]:
        """The JSON-RPC response from a JSON body or from the SSE event that carries it."""
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for line in response.text.splitlines():
                if line.startswith("data:"):
                    message = json.loads(line[5:].strip())
                    if "result" in message or "error" in message:
                        return dict(message)
            raise CheckFailed("the SSE stream held no JSON-RPC response")
        return dict(response.json())


def run_checks(url: str) -> None:
    with httpx.Client(timeout=60) as http:
        mcp = McpHttp(url, http)
        init = mcp.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "raw-httpx-example", "version": "1"},
            },
        )
        check(init["serverInfo"]["name"] == "python-mcp-server", "initialize names the server")
        check("tools" in init["capabilities"], "the server offers tools")
        check(mcp.notify("notifications/initialized") in (200, 202), "initialized accepted")

        names = {tool["name"] for tool in mcp.request("tools/list")["tools"]}
        check("run_python_code" in names, "tools/list includes run_python_code")

        reply = mcp.call_tool("run_python_code", {"code": "1 + 1"})
        check(not reply.get("isError"), "run_python_code succeeds")
        check(reply["structuredContent"]["result"] == "2", "1 + 1 is 2")
        check(reply["content"][0]["text"] == "2", "the text content is the result as text")

        mcp.call_tool("run_python_code", {"code": "total = sum(range(101))"})
        reply = mcp.call_tool("run_python_code", {"code": "print(total)"})
        check(reply["structuredContent"]["stdout"] == "5050\n", "variables persist")

        reply = mcp.call_tool("run_python_code", {"code": "1 / 0"})
        result = reply["structuredContent"]
        check(not reply.get("isError"), "a Python exception is not a tool error")
        check(result["status"] == "error", "... it is status 'error'")
        check(result["error"]["ename"] == "ZeroDivisionError", "... naming the exception")

        missing = f"no-such-session-{os.getpid()}"
        reply = mcp.call_tool("run_python_code", {"code": "1", "session_id": missing})
        check(reply.get("isError") is True, "an unknown session is a tool error")
        check(
            reply["content"][0]["text"].startswith("SESSION_NOT_FOUND:"),
            "... whose text starts with its stable code",
        )

        health = mcp.call_tool("health_check", {})
        check(health["structuredContent"]["status"] != "unhealthy", "health_check answers")

        if "mcp-session-id" in mcp.headers:
            http.delete(url, headers=mcp.headers)


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000/mcp"
    try:
        run_checks(url)
    except (CheckFailed, httpx.HTTPError, KeyError, ValueError) as exc:
        print(f"FAIL {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
