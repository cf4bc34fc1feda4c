"""Measures every tool call; one log line each at DEBUG, totals kept for health metrics."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import mcp_types as mt
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult

logger = logging.getLogger("python_mcp_server.timing")


@dataclass
class ToolTimings:
    """Call counts, failures and total seconds per tool."""

    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def record(self, tool: str, elapsed: float, *, failed: bool) -> None:
        self.calls[tool] += 1
        self.seconds[tool] += elapsed
        if failed:
            self.failures[tool] += 1


class TimingMiddleware(Middleware):
    """Records how long each tool call takes."""

    def __init__(self, timings: ToolTimings) -> None:
        self._timings = timings

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> Any:
        tool = context.message.name
        started = time.perf_counter()
        failed = True
        try:
            result = await call_next(context)
            failed = False
            return result
        finally:
            elapsed = time.perf_counter() - started
            self._timings.record(tool, elapsed, failed=failed)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "tool %s took %.1f ms%s", tool, elapsed * 1000, " (failed)" if failed else ""
                )
