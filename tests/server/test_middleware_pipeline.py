"""MiddlewarePipeline runs the server's middlewares as one FastMCP layer, in order
(server/middleware/pipeline.py): real FastMCP servers and clients, in memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mcp_types as mt
import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import Tool

from python_mcp_server.server.middleware.pipeline import MiddlewarePipeline


class Recording(Middleware):
    """Notes when its hooks start and end."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def on_call_tool(
        self, context: MiddlewareContext[mt.CallToolRequestParams], call_next: CallNext[Any, Any]
    ) -> Any:
        self.log.append(f"{self.name} call {context.message.name}")
        try:
            return await call_next(context)
        finally:
            self.log.append(f"{self.name} call done")


class Listing(Middleware):
    """Hides the tools whose name starts with ``hidden``; counts the lists."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_list_tools(
        self, context: MiddlewareContext[mt.ListToolsRequest], call_next: CallNext[Any, Any]
    ) -> Sequence[Tool]:
        self.log.append("list")
        tools: Sequence[Tool] = await call_next(context)
        return [tool for tool in tools if not tool.name.startswith("hidden")]


class Refusing(Middleware):
    async def on_call_tool(
        self, context: MiddlewareContext[mt.CallToolRequestParams], call_next: CallNext[Any, Any]
    ) -> Any:
        if context.message.name == "refused":
            raise ToolError("REFUSED: not this one")
        return await call_next(context)


def server(middlewares: list[Middleware]) -> FastMCP:
    mcp = FastMCP("pipeline", middleware=[MiddlewarePipeline(middlewares)])

    @mcp.tool
    async def echo(text: str) -> str:
        return text

    @mcp.tool
    async def refused() -> str:
        return "ran"

    @mcp.tool
    async def hidden_tool() -> str:
        return "hidden"

    return mcp


async def test_hooks_run_in_order_once_per_call() -> None:
    log: list[str] = []
    middlewares: list[Middleware] = [
        Listing(log),
        Recording("outer", log),
        Refusing(),
        Recording("inner", log),
    ]
    async with Client(server(middlewares)) as client:
        assert (await client.call_tool("echo", {"text": "hi"})).data == "hi"
        calls = [entry for entry in log if entry != "list"]  # the client may list the tools
        assert calls == ["outer call echo", "inner call echo", "inner call done", "outer call done"]
        log.clear()
        with pytest.raises(ToolError, match="REFUSED"):
            await client.call_tool("refused", {})
        calls = [entry for entry in log if entry != "list"]
        assert calls == ["outer call refused", "outer call done"]  # inner never ran
        log.clear()
        names = {tool.name for tool in await client.list_tools()}
        assert names == {"echo", "refused"}
        assert log == ["list"]  # no call hook ran for the list
        log.clear()
        await client.list_resources()  # no hook of the pipeline sees other messages
        assert log == []


def test_a_middleware_with_other_hooks_is_refused() -> None:
    class OnMessage(Middleware):
        async def on_message(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
            return await call_next(context)

    with pytest.raises(ValueError, match=r"OnMessage\.on_message"):
        MiddlewarePipeline([OnMessage()])
