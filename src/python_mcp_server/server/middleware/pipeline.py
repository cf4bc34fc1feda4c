"""The server's middlewares as one FastMCP middleware layer, in the order given.

FastMCP runs each middleware of its list as a layer of its own: every message passes
through each layer's ``__call__``, its handler chain being built for the message, and its
``on_message``, ``on_request`` and typed hook, whether the middleware overrides them or
not. Six layers made about fifty coroutine frames and twenty closures per tool call, and
the two that only shape ``tools/list`` were passed through on every call too.
``MiddlewarePipeline`` is one layer that runs, for ``tools/call`` and ``tools/list``, the
hooks its middlewares define for that method, each calling the next as FastMCP would,
outermost first, and passes every other message straight on. Each middleware keeps its
own module and concern (errors, scopes, timing, result budget, the tool list); only the
hooks a middleware defines are run (``on_call_tool`` and ``on_list_tools``: the
pipeline refuses a middleware that defines any other).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import mcp_types as mt
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import Tool, ToolResult

Hook = Callable[..., Awaitable[Any]]

#: The hooks a pipelined middleware may define.
RUN_HOOKS = ("on_call_tool", "on_list_tools")


def _defined(middleware: Middleware, hook: str) -> bool:
    return getattr(type(middleware), hook) is not getattr(Middleware, hook)


def _hooks(middlewares: Sequence[Middleware], hook: str) -> tuple[Hook, ...]:
    return tuple(getattr(m, hook) for m in middlewares if _defined(m, hook))


def _chain(hooks: tuple[Hook, ...], call_next: CallNext[Any, Any]) -> CallNext[Any, Any]:
    """``call_next`` wrapped in ``hooks``, the first outermost."""
    for hook in reversed(hooks):
        call_next = functools.partial(hook, call_next=call_next)
    return call_next


class MiddlewarePipeline(Middleware):
    """Runs ``middlewares`` (outermost first) as a single FastMCP layer."""

    def __init__(self, middlewares: Sequence[Middleware]) -> None:
        others = [
            f"{type(m).__name__}.{name}"
            for m in middlewares
            for name in dir(Middleware)
            if name.startswith("on_") and name not in RUN_HOOKS and _defined(m, name)
        ]
        if others:
            raise ValueError(f"the pipeline runs only {RUN_HOOKS}; not {others}")
        self.middlewares = tuple(middlewares)
        self._call_tool = _hooks(middlewares, "on_call_tool")
        self._list_tools = _hooks(middlewares, "on_list_tools")

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> Any:
        return await _chain(self._call_tool, call_next)(context)

    async def on_list_tools(
        self,
        context: MiddlewareContext[mt.ListToolsRequest],
        call_next: CallNext[mt.ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        tools: Sequence[Tool] = await _chain(self._list_tools, call_next)(context)
        return tools
