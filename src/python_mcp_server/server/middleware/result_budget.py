"""The result budget as the last step of every synchronous tool call.

Each tool result passes through ``ResultBudget.fit`` (``server/result_budget.py``) on its
way out. A result whose text is small is measured on the event loop (a few microseconds:
the usual case, kept off any thread hop); a large one is measured and cut in a worker
thread (that is CPU work). Calls run as MCP tasks bypass middleware; ``task_tool`` fits
their results itself.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as mt
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult

from python_mcp_server.server.result_budget import ResultBudget


class ResultBudgetMiddleware(Middleware):
    """Cuts a tool result that is over ``MCP_MAX_RESULT_CHARS``."""

    def __init__(self, budget: ResultBudget, exempt: frozenset[str] = frozenset()) -> None:
        self._budget = budget
        #: Tools whose results are not for the model (an app's own tools).
        self._exempt = exempt

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> Any:
        result = await call_next(context)
        if not isinstance(result, ToolResult):
            return result
        name = context.message.name
        if name in self._exempt:
            return result
        if self._budget.fits_inline(result):
            return result
        return await anyio.to_thread.run_sync(lambda: self._budget.fit(result, name=name))
