"""Drive python-mcp-server with the fastmcp Client, checking every answer.

    python examples/fastmcp_client.py [http://127.0.0.1:8000/mcp]

The server requires a bearer token on HTTP (made at its first start); pass it in
MCP_AUTH_TOKEN, e.g. ``MCP_AUTH_TOKEN=$(python-mcp-server token) python examples/...``.

Shows the everyday calls: run code, keep state, read errors as data, answer input(),
work in a second session, and recognise a tool error by its stable code.
Exits 0 when every check passes, 1 (naming the failed check) otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from fastmcp import Client
from fastmcp.exceptions import ToolError


class CheckFailed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)
    print(f"ok   {what}")


async def run(client: Client[Any], code: str, **arguments: Any) -> dict[str, Any]:
    """run_python_code's structured result."""
    result = await client.call_tool("run_python_code", {"code": code, **arguments})
    assert result.structured_content is not None
    return dict(result.structured_content)


async def run_checks(url: str) -> None:
    session = f"example-{os.getpid()}"
    async with Client(url, auth=os.environ.get("MCP_AUTH_TOKEN") or None) as client:
        tools = {tool.name for tool in await client.list_tools()}
        check({"run_python_code", "create_session", "list_sessions"} <= tools, "tools listed")

        await run(client, "x = 21")
        result = await run(client, "x * 2")
        check(result["status"] == "ok" and result["result"] == "42", "state survives calls")

        result = await run(client, "print('hello'); import sys; print('oops', file=sys.stderr)")
        check(result["stdout"] == "hello\n", "stdout captured")
        check(result["stderr"] == "oops\n", "stderr captured")

        result = await run(client, "int('seven')")
        check(result["status"] == "error", "a Python exception is status 'error'")
        check(result["error"]["ename"] == "ValueError", "... with the exception name")
        check(
            any("int('seven')" in line for line in result["error"]["traceback"]),
            "... and a traceback pointing at the code",
        )

        result = await run(
            client, "name = input('name? '); print(f'hi {name}')", input_data=["Ada"]
        )
        check(result["stdout"].endswith("hi Ada\n"), "input_data answers input()")

        await client.call_tool("create_session", {"session_id": session})
        try:
            result = await run(client, "x", session_id=session)
            check(result["error"]["ename"] == "NameError", "sessions do not share variables")
            listed = await client.call_tool("list_sessions", {})
            ids = [s["session_id"] for s in listed.structured_content["sessions"]]
            check(session in ids, "the new session is listed")
        finally:
            await client.call_tool("delete_session", {"session_id": session})

        try:
            await client.call_tool("run_python_code", {"code": "1", "session_id": session})
        except ToolError as exc:
            check(str(exc).startswith("SESSION_NOT_FOUND:"), "a deleted session is an error code")
        else:
            raise CheckFailed("running in a deleted session should fail")


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000/mcp"
    try:
        asyncio.run(run_checks(url))
    except (CheckFailed, ToolError, KeyError, TypeError) as exc:
        print(f"FAIL {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
