"""Caches the (dereferenced) tool list: the tools of a server never change after build.

fastmcp inlines every ``$ref`` of every tool schema each time the tool list is asked for,
and a tool call asks for it too; with nested result models that costs milliseconds per call.
The list is computed once and reused.
"""

from __future__ import annotations

from collections.abc import Sequence

import mcp_types as mt
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import Tool


class ToolListCacheMiddleware(Middleware):
    """Answers list_tools from the first computed answer."""

    def __init__(self) -> None:
        self._tools: Sequence[Tool] | None = None

    async def on_list_tools(
        self,
        context: MiddlewareContext[mt.ListToolsRequest],
        call_next: CallNext[mt.ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        if self._tools is None:
            self._tools = await call_next(context)
        return self._tools
