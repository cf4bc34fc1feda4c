"""build_server(settings) -> FastMCP: the whole protocol face in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastmcp import FastMCP

from python_mcp_server import __version__
from python_mcp_server.server.auth import build_auth
from python_mcp_server.server.input_schemas import install_input_schema_lookup
from python_mcp_server.server.middleware.errors import ErrorTranslationMiddleware
from python_mcp_server.server.middleware.pipeline import MiddlewarePipeline
from python_mcp_server.server.middleware.result_budget import ResultBudgetMiddleware
from python_mcp_server.server.middleware.scopes import ScopedToolListing, ScopeMiddleware
from python_mcp_server.server.middleware.timing import TimingMiddleware
from python_mcp_server.server.middleware.tool_list_cache import ToolListCacheMiddleware
from python_mcp_server.server.resources import register_resources
from python_mcp_server.server.routes import register_file_routes
from python_mcp_server.server.routes_health import register_health_route
from python_mcp_server.server.services import Services, build_services
from python_mcp_server.server.tasks import tasks_extension
from python_mcp_server.server.tool_listing import CompactToolListing
from python_mcp_server.server.tools.notebooks import APP_ONLY_TOOLS, LINK_SECONDS, view_url
from python_mcp_server.server.toolsets import register_toolsets, select_toolsets
from python_mcp_server.server.view.links import ALL_SESSIONS
from python_mcp_server.server.view.routes import register_view_routes
from python_mcp_server.settings import Settings

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
A persistent Python: each session is a live Jupyter kernel whose variables survive between
calls. Run code with run_python_code (session_id names the session; "default" is created on
first use). Errors of user code come back as status "error"; misuse comes back as a tool
error whose message starts with a stable code such as SESSION_NOT_FOUND or INVALID_INPUT."""


def build_server(settings: Settings, services: Services | None = None) -> FastMCP:
    """Create the FastMCP server for these settings (services are started by its lifespan)."""
    services = services if services is not None else build_services(settings)

    @asynccontextmanager
    async def lifespan(_server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        await install_input_schema_lookup(mcp)
        if views and settings.transport == "http":
            url = view_url(services, services.view_signer, ALL_SESSIONS)
            logger.info(
                "live view of the sessions (open within %d s; get_session_view_link makes "
                "fresh links): %s",
                LINK_SECONDS,
                url,
            )
        try:
            yield {"services": services}
        finally:
            await services.aclose()

    mcp = FastMCP(
        "python-mcp-server",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        middleware=[
            MiddlewarePipeline(  # one FastMCP layer for them all (a layer each costs CPU)
                [
                    ScopedToolListing(),  # outside the cache: it filters the cached list
                    ToolListCacheMiddleware(),
                    ErrorTranslationMiddleware(),
                    ScopeMiddleware(),
                    TimingMiddleware(),
                    ResultBudgetMiddleware(services.result_budget, APP_ONLY_TOOLS),
                ]
            )
        ],
        mask_error_details=False,
        auth=build_auth(settings),  # HTTP only; stdio and in-memory callers are `default`
        on_duplicate="error",  # two tools of one name is a bug; compat removes first
    )
    mcp.add_extension(tasks_extension(settings))
    selected = select_toolsets(settings.toolsets)
    views = "notebooks" in selected
    register_toolsets(mcp, services, selected)
    if views:
        register_view_routes(mcp, services, services.view_signer)
    mcp.add_transform(CompactToolListing())
    register_resources(mcp, services)
    register_file_routes(mcp, services)  # auth: pass protect=<wrapper> here
    register_health_route(mcp, services)
    return mcp
