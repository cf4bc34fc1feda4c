"""Translates the project's exceptions into MCP tool errors with a stable code prefix.

A ``ServerError`` becomes ``CODE: message``; bad arguments become ``INVALID_INPUT: ...``
with pydantic's noise removed; a full disk anywhere in the chain (``ENOSPC``) becomes
``DISK_FULL: ...``; a protocol error that already carries a stable code (see
``protocol_error``) passes as it is; anything unexpected becomes ``INTERNAL_ERROR: ...`` and its
traceback goes to the log, never to the client.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from typing import Any

import mcp_types as mt
from fastmcp.exceptions import NotFoundError, ToolError
from fastmcp.exceptions import ValidationError as FastMCPValidationError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from python_mcp_server.errors import ErrorCode, ServerError

logger = logging.getLogger("python_mcp_server.errors")


def describe_validation_error(exc: ValidationError) -> str:
    """One short line per problem: ``field: message``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "call") or "arguments"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ServerError, ValidationError)):
            return current
        nxt = current.__cause__ or current.__context__
        if nxt is None:
            break
        current = nxt
    return exc


def _disk_full(exc: BaseException) -> bool:
    """Whether a full disk (ENOSPC, EDQUOT) is anywhere in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.OperationalError) and "full" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def translate(exc: BaseException, tool: str) -> ToolError:
    """The tool error a client sees for an exception raised while calling ``tool``."""
    cause = _root_cause(exc)
    if isinstance(cause, ServerError) and cause.code is not ErrorCode.INTERNAL_ERROR:
        return ToolError(str(cause))
    if _disk_full(exc):
        logger.warning("tool %s: the disk is full: %s", tool, exc)
        return ToolError(
            f"{ErrorCode.DISK_FULL.value}: {tool} could not write: the disk is full (no "
            "space left on the file system of the workspace or the server's state); free "
            "space and call again"
        )
    if isinstance(cause, ServerError):
        return ToolError(str(cause))
    if isinstance(cause, ValidationError):
        return ToolError(f"{ErrorCode.INVALID_INPUT.value}: {describe_validation_error(cause)}")
    if isinstance(exc, FastMCPValidationError):
        return ToolError(f"{ErrorCode.INVALID_INPUT.value}: {exc}")
    if isinstance(exc, NotFoundError):
        return ToolError(f"{ErrorCode.INVALID_INPUT.value}: unknown tool {tool!r}")
    if isinstance(exc, ToolError) and str(exc).split(":", 1)[0] in ErrorCode.__members__:
        return exc
    logger.error("tool %s failed unexpectedly", tool, exc_info=exc)
    return ToolError(
        f"{ErrorCode.INTERNAL_ERROR.value}: {tool} failed unexpectedly "
        f"({type(cause).__name__}); see the server log"
    )


def protocol_error(error: ServerError) -> MCPError:
    """A JSON-RPC error for a request that is no tool call (or made no tool result): the
    ``CODE: message`` text, and the code again in ``data.code``."""
    return MCPError(code=mt.INTERNAL_ERROR, message=str(error), data={"code": error.code.value})


def carries_code(exc: MCPError) -> bool:
    """Whether a protocol error was made by ``protocol_error``."""
    data = exc.error.data
    return isinstance(data, dict) and data.get("code") in ErrorCode.__members__


class ErrorTranslationMiddleware(Middleware):
    """Every tool failure leaves as ``isError: true`` with ``CODE: message``."""

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> Any:
        try:
            return await call_next(context)
        except MCPError as exc:
            if carries_code(exc):
                raise  # already a protocol error with a stable code (tasks: no task made)
            raise translate(exc, context.message.name) from exc
        except Exception as exc:
            raise translate(exc, context.message.name) from exc
