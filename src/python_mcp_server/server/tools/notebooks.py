"""Notebook tools: export_notebook, import_notebook (the opt-in ``notebooks`` toolset)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastmcp import FastMCP
from fastmcp.tools.base import ToolResult
from mcp_types import ContentBlock, ResourceLink, TextContent
from pydantic import Field

from python_mcp_server.core.notebooks.service import NotebookRun
from python_mcp_server.core.sessions.manager import validate_session_id
from python_mcp_server.models.notebooks import CellOutcome, NotebookExport, NotebookImport
from python_mcp_server.server.resources import workspace_uri
from python_mcp_server.server.services import Services

TAGS = {"notebooks"}

_MIME = {"ipynb": "application/x-ipynb+json", "html": "text/html", "py": "text/x-python"}
#: Characters of a cell's stdout/stderr kept in an import result.
_EXCERPT = 500


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
        exported = await notebooks.export(session_id, format, path)
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
        run = await notebooks.run_notebook(
            path, session_id, stop_on_error=stop_on_error, write_back=write_back
        )
        return _compact(_import_result(run), [])
