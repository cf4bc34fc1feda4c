"""Scopes: each tool needs one, checked before it runs (and before a task is created).

A caller without a token (stdio, in-memory, HTTP without auth) holds every scope; static
tokens hold every scope; a JWT holds what its ``scope``/``scp`` claim lists. ``admin``
stands for all of them. A missing scope fails the call with ``INSUFFICIENT_SCOPE``, and
``tools/list`` shows a caller only the tools its scopes allow (``ScopedToolListing``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import mcp_types as mt
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import Tool, ToolResult
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from python_mcp_server.errors import ErrorCode
from python_mcp_server.server.principals import ADMIN, current_scopes, has_scope

EXECUTE = "code:execute"
FILES_READ = "files:read"
FILES_WRITE = "files:write"
PACKAGES = "packages:install"

#: The scope of each tool group (its tag).
GROUP_SCOPES = {
    "execution": EXECUTE,
    "introspection": EXECUTE,
    "scripts": EXECUTE,
    "diagnostics": EXECUTE,
    "notebooks": EXECUTE,
    "sessions": EXECUTE,
    "health": EXECUTE,
    "history": EXECUTE,
    "safety": EXECUTE,
    "compat": EXECUTE,
    "files": FILES_READ,
    "packages": PACKAGES,
    "environments": PACKAGES,
}
#: Tools whose scope differs from their group's.
TOOL_SCOPES = {
    "write_file": FILES_WRITE,
    "delete_file": FILES_WRITE,
    "save_script": FILES_WRITE,
    "run_script": EXECUTE,
    "get_workspace_info": FILES_READ,
    "export_notebook": FILES_WRITE,
    "list_packages": EXECUTE,
    "list_venvs": EXECUTE,
    "install_packages": PACKAGES,
    "uninstall_packages": PACKAGES,
    "install_python_package": PACKAGES,
    "create_venv": PACKAGES,
    "delete_venv": PACKAGES,
    "set_venv_description": PACKAGES,
}
#: Any tool not placed above needs this.
FALLBACK_SCOPE = "admin"


def scope_of(tool_name: str, tags: set[str]) -> str:
    """The scope a tool needs."""
    if tool_name in TOOL_SCOPES:
        return TOOL_SCOPES[tool_name]
    for tag in sorted(tags):
        if tag in GROUP_SCOPES:
            return GROUP_SCOPES[tag]
    return FALLBACK_SCOPE


def insufficient(needed: str) -> str:
    return (
        f"{ErrorCode.INSUFFICIENT_SCOPE.value}: this call needs the scope {needed!r}, which "
        "your token does not grant"
    )


def route_scope(
    needed: str,
) -> Callable[[Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """Wrap an HTTP route handler: 403 ``INSUFFICIENT_SCOPE`` unless the caller has
    ``needed`` (a request the auth layer did not authenticate holds every scope)."""

    def wrap(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            user = request.scope.get("user")
            scopes = (
                frozenset(user.access_token.scopes) if isinstance(user, AuthenticatedUser) else None
            )
            if not has_scope(scopes, needed):
                message = insufficient(needed).split(": ", 1)[1]
                return JSONResponse(
                    {"error": {"code": ErrorCode.INSUFFICIENT_SCOPE.value, "message": message}},
                    status_code=403,
                )
            return await handler(request)

        return guarded

    return wrap


class ScopeMiddleware(Middleware):
    """Refuses a tool call whose caller lacks the tool's scope.

    A caller holding ``admin`` (every static token does) passes any scope, so its calls
    look nothing up. For the others the scope a tool needs is found once per tool name
    (looking a tool up runs FastMCP's providers and transforms) and kept: a server's tools
    and their tags never change after it is built (``toolsets.py`` hides tools then).
    """

    def __init__(self) -> None:
        #: Tool name -> the scope it needs, for the tools looked up so far.
        self._needed: dict[str, str] = {}

    async def needed_scope(
        self, context: MiddlewareContext[mt.CallToolRequestParams]
    ) -> str | None:
        """The scope the called tool needs; None when there is no such tool (the call then
        fails as unknown)."""
        name = context.message.name
        needed = self._needed.get(name)
        if needed is None and context.fastmcp_context is not None:
            tool: Tool | None = await context.fastmcp_context.fastmcp.get_tool(name)
            if tool is not None:
                needed = self._needed[name] = scope_of(tool.name, set(tool.tags))
        return needed

    async def on_call_tool(
        self,
        context: MiddlewareContext[mt.CallToolRequestParams],
        call_next: CallNext[mt.CallToolRequestParams, ToolResult],
    ) -> Any:
        scopes = current_scopes()
        if scopes is not None and ADMIN not in scopes:
            needed = await self.needed_scope(context)
            if needed is not None and not has_scope(scopes, needed):
                raise ToolError(insufficient(needed))
        return await call_next(context)


class ScopedToolListing(Middleware):
    """``tools/list`` shows only the tools the caller's scopes allow.

    Placed outside the tool-list cache: the cache holds every tool, this filters the
    cached list for each caller. A call is still checked by ``ScopeMiddleware``.
    """

    async def on_list_tools(
        self,
        context: MiddlewareContext[mt.ListToolsRequest],
        call_next: CallNext[mt.ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        tools = await call_next(context)
        scopes = current_scopes()
        if scopes is None:
            return tools
        return [tool for tool in tools if has_scope(scopes, scope_of(tool.name, set(tool.tags)))]
