"""Times every tool call: one log line each at DEBUG (health metrics are kept by
``core.health_report.ExecutionMetrics``)."""

from __future__ import annotations

import logging
import time
from typing import Any

import mcp_types as mt
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult

logger = logging.getLogger("python_mcp_server.timing")


class TimingMiddleware(Middleware):
    """Logs how long each tool call took, and whether it failed."""

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> Any:
        if not logger.isEnabledFor(logging.DEBUG):
            return await call_next(context)
        started = time.perf_counter()
        failed = True
        try:
            result = await call_next(context)
            failed = False
            return result
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            suffix = " (failed)" if failed else ""
            logger.debug("tool %s took %.1f ms%s", context.message.name, elapsed_ms, suffix)
