"""Wire models of the notebook tools: export_notebook and import_notebook."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class NotebookExport(BaseModel):
    """Where an exported notebook was written."""

    path: str = Field(description="Workspace-relative path of the written file.")
    format: Literal["ipynb", "html", "py"]
    size: int = Field(description="Bytes written.")
    cells: int = Field(description="Recorded cells in it (code cells and notes).")


class CellOutcome(BaseModel):
    """One code cell of an imported notebook and what running it gave (compact)."""

    cell: int = Field(description="Index of the cell in the notebook.")
    status: Literal["ok", "error", "timeout"]
    stdout: str | None = None
    stderr: str | None = None
    result: str | None = None
    error: str | None = Field(None, description="'ExceptionName: message' when the cell failed.")


class NotebookImport(BaseModel):
    """The outcome of running a notebook's code cells in a session."""

    session_id: str
    ran: int = Field(description="Code cells run.")
    cells: list[CellOutcome]
    stopped_at: int | None = Field(
        None, description="Index of the failing cell where the run stopped (stop_on_error)."
    )
    written: str | None = Field(None, description="Where the executed notebook was saved.")
    message: str | None = Field(
        None, description="What the server did, in words (e.g. the user approved the code)."
    )
