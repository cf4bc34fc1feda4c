"""Notebook tools (the opt-in ``notebooks`` toolset): export_notebook, import_notebook,
get_session_view_link, and show_session_view with its MCP App resource."""

from __future__ import annotations

from typing import Annotated, Literal

from fastmcp import Context, FastMCP
from fastmcp.apps import UI_MIME_TYPE, AppConfig
from fastmcp.tools.base import ToolResult
from mcp_types import ContentBlock, ResourceLink, TextContent
from pydantic import Field

from python_mcp_server.core.notebooks.export import code_cells
from python_mcp_server.core.notebooks.service import NotebookRun
from python_mcp_server.core.sessions.manager import validate_session_id
from python_mcp_server.core.sessions.owners import session_key
from python_mcp_server.models.notebooks import CellOutcome, NotebookExport, NotebookImport
from python_mcp_server.server.approval import approval_for
from python_mcp_server.server.principals import current_principal, session_ref
from python_mcp_server.server.resources import workspace_uri
from python_mcp_server.server.services import Services
from python_mcp_server.server.view.links import ALL_SESSIONS, ViewSigner
from python_mcp_server.server.view.page import app_page
from python_mcp_server.server.view.routes import ViewRoutes, cell_json

TAGS = {"notebooks"}
#: Seconds a view link can be opened in (it is then traded for a cookie).
LINK_SECONDS = 600
#: The MCP App resource of the session view.
APP_URI = "ui://python-mcp-server/session-view.html"

_MIME = {"ipynb": "application/x-ipynb+json", "html": "text/html", "py": "text/x-python"}
#: Characters of a cell's stdout/stderr kept in an import result.
_EXCERPT = 500

#: Tools whose results go to the session view app only, never into a model's context: the
#: result budget leaves them whole (a cut would break the images the app draws).
APP_ONLY_TOOLS = frozenset({"session_view_cells"})


def _excerpt(text: str) -> str | None:
    if not text:
        return None
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + f"… [{len(text)} chars]"


def _import_result(run: NotebookRun) -> NotebookImport:
    cells = []
    for cell in run.cells:
        result = cell.result
        error = f"{result.error.ename}: {result.error.evalue}" if result.error else None
        cells.append(
            CellOutcome(
                cell=cell.index,
                status=result.status,
                stdout=_excerpt(result.stdout),
                stderr=_excerpt(result.stderr),
                result=_excerpt(result.result or ""),
                error=error,
            )
        )
    return NotebookImport(
        session_id=run.session_id,
        ran=len(cells),
        cells=cells,
        stopped_at=run.stopped_at,
        written=run.written,
    )


def _compact(model: NotebookExport | NotebookImport, extra: list[ContentBlock]) -> ToolResult:
    text = model.model_dump_json(exclude_none=True)
    return ToolResult(
        content=[TextContent(type="text", text=text), *extra],
        structured_content=model.model_dump(mode="json", exclude_none=True),
    )


def register(mcp: FastMCP, services: Services) -> None:
    notebooks = services.notebooks
    settings = services.settings

    @mcp.tool(
        tags=TAGS,
        annotations={"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True},
    )
    async def export_notebook(
        session_id: Annotated[str, Field(description="Session whose executions to export.")],
        format: Annotated[
            Literal["ipynb", "html", "py"],
            Field(description="ipynb (nbformat 4), html or py (a Python script)."),
        ] = "ipynb",
        path: Annotated[
            str | None,
            Field(description="Workspace path to write; default notebooks/<session>.<ext>."),
        ] = None,
    ) -> ToolResult:
        """Save what a session ran (code, output, images, errors, execution counts; kernel
        replacements as notes) as a notebook file in the workspace; returns a link to it.
        Works after a server restart for what was recorded before it."""
        validate_session_id(session_id)
        exported = await notebooks.export(session_ref(session_id), format, path)
        link = ResourceLink(
            type="resource_link",
            uri=workspace_uri(exported.path),
            name=exported.path.rsplit("/", 1)[-1],
            mime_type=_MIME[format],
            size=exported.size,
        )
        model = NotebookExport(
            path=exported.path, format=format, size=exported.size, cells=exported.cells
        )
        return _compact(model, [link])

    @mcp.tool(
        tags=TAGS,
        annotations={"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False},
    )
    async def import_notebook(
        path: Annotated[str, Field(description="Workspace path of an nbformat 4 .ipynb file.")],
        ctx: Context,
        session_id: Annotated[
            str | None, Field(description="Session to run the cells in; default: the active one.")
        ] = None,
        stop_on_error: Annotated[
            bool, Field(description="Stop at the first cell that fails or times out.")
        ] = True,
        write_back: Annotated[
            str | None,
            Field(description="Workspace path to save the executed notebook to (may be path)."),
        ] = None,
    ) -> ToolResult:
        """Run a notebook's code cells in order in a session (variables stay in it) and
        return each cell's status, output excerpt, value and error."""
        if session_id is not None:
            validate_session_id(session_id)
        notebook = await notebooks.load(path)
        code = "\n\n".join(source for _, source in code_cells(notebook))
        approval = await approval_for(ctx, code, settings.safety_mode, settings.safety_ask_fallback)
        if approval.ask is not None:
            return approval.ask  # the client asks the user and calls again
        run = await notebooks.run_notebook(
            path,
            session_ref(session_id),
            stop_on_error=stop_on_error,
            write_back=write_back,
            notebook=notebook,
        )
        result = _import_result(run)
        result.message = approval.note
        return _compact(result, [])


def view_url(services: Services, signer: ViewSigner, session_id: str) -> str:
    """A signed link to a session's view (or, with ``*``, to the session list)."""
    settings = services.settings
    token = signer.mint(current_principal(), session_id, LINK_SECONDS)
    path = "/sessions" if session_id == ALL_SESSIONS else f"/sessions/{session_id}/view"
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    return f"http://{host}:{settings.port}{path}?t={token}"


def register_views(mcp: FastMCP, services: Services) -> None:
    """The view tools: a link for the browser, and the same view as an MCP App."""
    signer = services.view_signer
    routes = ViewRoutes(services, signer)

    @mcp.tool(
        tags=TAGS,
        annotations={"readOnlyHint": True, "destructiveHint": False, "idempotentHint": False},
    )
    async def get_session_view_link(
        session_id: Annotated[
            str, Field(description="Session to watch; '*' for the list of sessions.")
        ],
    ) -> dict[str, str | int]:
        """A short-lived signed link that opens a live notebook view of the session in a
        browser (cells as they run, output, images, errors, variables, kernel status). Give
        it to the human; it opens within 10 minutes and carries no bearer token."""
        if session_id != ALL_SESSIONS:
            validate_session_id(session_id)
        return {"url": view_url(services, signer, session_id), "expires_in": LINK_SECONDS}

    @mcp.resource(APP_URI, name="session_view_app", mime_type=UI_MIME_TYPE)
    def session_view_app() -> str:
        """The session view as an MCP App (rendered by clients that support MCP Apps)."""
        return app_page()

    @mcp.tool(
        tags=TAGS,
        app=AppConfig(resource_uri=APP_URI),
        annotations={"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True},
    )
    async def show_session_view(
        session_id: Annotated[str, Field(description="Session to show.")],
    ) -> dict[str, object]:
        """Show the session as a live notebook in the chat (an MCP App, for clients that
        render them): cells so far and as they run, the kernel's status and variables. The
        result itself is small: the app fetches the cells."""
        validate_session_id(session_id)
        ref = session_ref(session_id)
        return {"session_id": session_id, "state": await routes.state(ref)}

    @mcp.tool(
        tags=TAGS,
        app=AppConfig(visibility=["app"]),
        annotations={"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True},
    )
    async def session_view_cells(
        session_id: Annotated[str, Field(description="Session shown.")],
        after: Annotated[int, Field(ge=0, description="Cells the app already shows.")] = 0,
    ) -> dict[str, object]:
        """For the session view app: recorded cells past the first `after`, the total, and
        the kernel's state."""
        validate_session_id(session_id)
        ref = session_ref(session_id)
        cells = await services.cells.cells(session_key(ref.owner, session_id))
        return {
            "cells": [cell_json(c) for c in cells[after:]],
            "total": len(cells),
            "state": await routes.state(ref),
        }
