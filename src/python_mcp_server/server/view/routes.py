"""HTTP routes of the live view: the session list, a session's page, its event stream.

``GET /sessions``, ``GET /sessions/{id}/view`` and ``GET /sessions/{id}/events`` accept a
signed link token (``?t=``, minted by the ``get_session_view_link`` tool or logged at start)
or the cookie a link is traded for; the bearer middleware lets these paths through to this
check. A link opens what it names for the principal it names, and expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from python_mcp_server.core.notebooks.cells import Cell
from python_mcp_server.core.notebooks.live import Event
from python_mcp_server.core.sessions.owners import SessionRef, session_key
from python_mcp_server.errors import ServerError
from python_mcp_server.server.services import Services
from python_mcp_server.server.view.links import ALL_SESSIONS, ViewGrant, ViewSigner
from python_mcp_server.server.view.page import csp, list_page, session_page

logger = logging.getLogger(__name__)

COOKIE = "pmcp_view"
#: How long the cookie a link is traded for stays valid.
COOKIE_SECONDS = 8 * 3600
#: Seconds between state events on an idle stream (and checks that the session lives).
STATE_EVERY = 5.0
VARIABLES_TIMEOUT = 2.0


def _refused(message: str, status: int = 401) -> JSONResponse:
    return JSONResponse({"error": {"code": "UNAUTHORIZED", "message": message}}, status)


class ViewRoutes:
    """The view's handlers, sharing the signer and the services."""

    def __init__(self, services: Services, signer: ViewSigner) -> None:
        self._services = services
        self._signer = signer

    # --- auth ---------------------------------------------------------------------------
    def _grant(self, request: Request, session_id: str) -> ViewGrant | None:
        for token in (request.query_params.get("t"), request.cookies.get(COOKIE)):
            grant = self._signer.verify(token) if token else None
            if grant is not None and grant.allows(session_id):
                return grant
        return None

    def _trade_link(self, request: Request, grant: ViewGrant) -> Response | None:
        """A link in the URL becomes a cookie and a redirect to the clean URL."""
        if "t" not in request.query_params:
            return None
        response = RedirectResponse(request.url.remove_query_params("t"), status_code=303)
        cookie = self._signer.mint(grant.principal, grant.scope, COOKIE_SECONDS)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=COOKIE_SECONDS,
            path="/sessions",
            httponly=True,
            samesite="strict",
        )
        return response

    @staticmethod
    def _page(text: str, nonce: str) -> Response:
        return Response(
            text,
            media_type="text/html",
            headers={
                "Content-Security-Policy": csp(nonce),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    # --- state --------------------------------------------------------------------------
    async def state(self, ref: SessionRef) -> dict[str, Any]:
        """Status, counters and (when the kernel answers quickly) the variables."""
        sessions = self._services.sessions
        if ref not in sessions:
            return {"status": "ended", "execution_count": 0}
        session = sessions.get(ref)
        status = session.status  # the vocabulary list_sessions and health use
        state: dict[str, Any] = {
            "status": status,
            "execution_count": session.execution_count,
            "restarts": session.restart_count,
        }
        if status == "idle":
            with contextlib.suppress(ServerError, asyncio.TimeoutError):
                listing = await asyncio.wait_for(
                    self._services.introspection.variables(ref), VARIABLES_TIMEOUT
                )
                state["variables"] = [
                    {"name": v.name, "type": v.type, "repr": v.repr} for v in listing.variables
                ]
        return state

    # --- handlers -----------------------------------------------------------------------
    async def list_sessions(self, request: Request) -> Response:
        grant = self._grant(request, ALL_SESSIONS)
        if grant is None or grant.scope != ALL_SESSIONS:
            return _refused("open the session list through a fresh signed link")
        traded = self._trade_link(request, grant)
        if traded is not None:
            return traded
        rows = [
            {
                "session_id": s.session_id,
                "status": s.status,
                "description": s.description,
            }
            for s in self._services.sessions.all(grant.principal)
        ]
        return self._page(*list_page(rows))

    async def view(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        grant = self._grant(request, session_id)
        if grant is None:
            return _refused("open this view through a fresh link from get_session_view_link")
        traded = self._trade_link(request, grant)
        if traded is not None:
            return traded
        return self._page(*session_page(session_id))

    async def events(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        grant = self._grant(request, session_id)
        if grant is None:
            return _refused("the view's link has expired; open a fresh one")
        return StreamingResponse(
            self._stream(SessionRef(grant.principal, session_id)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, ref: SessionRef) -> AsyncIterator[str]:
        feed = self._services.live
        session_id = ref.session_id or ""
        key = session_key(ref.owner, session_id)
        async with feed.subscribe(key) as queue:
            seen = feed.seq  # captured with the read below submitted in the same step
            cells = await self._services.cells.cells(key)
            snapshot = {
                "cells": [cell_json(c) for c in cells],
                "state": await self.state(ref),
            }
            yield _sse("snapshot", snapshot)
            while True:
                try:
                    event: Event = await asyncio.wait_for(queue.get(), STATE_EVERY)
                except asyncio.TimeoutError:
                    state = await self.state(ref)
                    if state["status"] == "ended":
                        yield _sse("ended", {"reason": f"session {session_id!r} has ended"})
                        return
                    yield _sse("state", state)
                    continue
                if int(event.get("seq", 0)) <= seen:
                    continue
                yield _sse(str(event["type"]), event)
                if event["type"] == "cell":
                    yield _sse("state", await self.state(ref))


def cell_json(cell: Cell) -> dict[str, Any]:
    """A recorded cell as the view's renderer takes it."""
    return {
        "kind": cell.kind,
        "source": cell.source,
        "execution_count": cell.execution_count,
        "outputs": list(cell.outputs),
    }


def _sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def register_view_routes(mcp: FastMCP, services: Services, signer: ViewSigner) -> None:
    routes = ViewRoutes(services, signer)
    mcp.custom_route("/sessions", methods=["GET"])(routes.list_sessions)
    mcp.custom_route("/sessions/{session_id}/view", methods=["GET"])(routes.view)
    mcp.custom_route("/sessions/{session_id}/events", methods=["GET"])(routes.events)
