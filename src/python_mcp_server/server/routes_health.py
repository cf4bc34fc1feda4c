"""GET /health for load balancers and probes: 200 and JSON when serving, 503 when not.

Unauthenticated and cheap; it shows no settings, only the status, the problems, the
version, the uptime and session counts.
"""

from __future__ import annotations

from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from python_mcp_server.server.services import Services


def register_health_route(mcp: FastMCP, services: Services) -> None:
    @mcp.custom_route("/health", methods=["GET"], include_in_schema=False)
    async def health(_request: Request) -> Response:
        report = await services.health_report.check()
        body = {
            "status": report.status,
            "problems": report.problems,
            "version": report.version,
            "uptime": report.metrics.uptime,
            "sessions": report.metrics.active_sessions,
            "total_executions": report.metrics.total_executions,
        }
        code = 503 if report.status == "unhealthy" else 200
        return JSONResponse(body, status_code=code, headers={"Cache-Control": "no-store"})
