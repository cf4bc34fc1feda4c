"""NotebookService: export a session's recorded cells as a file, import and run a notebook.

Files are read and written only through the workspace resolver (no link is followed, the
state folder is refused, the size cap holds), and an export is written atomically, so a
failure leaves nothing half-written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import anyio
from nbformat import NotebookNode, from_dict

from python_mcp_server.core.execution.service import ExecutionRequest, ExecutionService
from python_mcp_server.core.notebooks.cells import CellStore
from python_mcp_server.core.notebooks.export import (
    SUFFIXES,
    NotebookFormat,
    build_notebook,
    code_cells,
    read_notebook,
    render,
)
from python_mcp_server.core.notebooks.recorder import outputs_of
from python_mcp_server.core.sessions.owners import (
    DEFAULT_OWNER,
    SessionRef,
    SessionSpec,
    session_key,
)
from python_mcp_server.core.sessions.session import ExecutionOutcome
from python_mcp_server.core.workspace.atomic_write import AtomicWriter
from python_mcp_server.core.workspace.resolver import Workspace
from python_mcp_server.errors import InvalidInputError, SessionNotFoundError
from python_mcp_server.models.execution import ExecutionResult


@dataclass(frozen=True)
class ExportedNotebook:
    """Where an export went and what it holds."""

    path: str
    size: int
    cells: int
    fmt: NotebookFormat


@dataclass
class CellRun:
    """One code cell of an imported notebook and what running it gave."""

    index: int
    result: ExecutionResult


@dataclass
class NotebookRun:
    """The outcome of running a notebook's code cells."""

    session_id: str
    cells: list[CellRun] = field(default_factory=list)
    stopped_at: int | None = None
    written: str | None = None


class NotebookService:
    """Exports recorded cells and runs notebooks through the execution pipeline."""

    def __init__(self, cells: CellStore, workspace: Workspace, execution: ExecutionService) -> None:
        self._cells = cells
        self._workspace = workspace
        self._execution = execution

    async def export(
        self, ref: SessionRef, fmt: NotebookFormat, path: str | None = None
    ) -> ExportedNotebook:
        """Write the session's notebook under the workspace (default notebooks/<id>.<ext>,
        notebooks/<principal>/<id>.<ext> for principals other than ``default``)."""
        session_id = ref.session_id or ""
        cells = await self._cells.cells(session_key(ref.owner, session_id))
        if not cells:
            raise SessionNotFoundError(
                f"nothing was recorded for session {session_id!r}; run code in it first "
                "(list_sessions shows the sessions)"
            )
        # One workspace serves every principal: others' notebooks go in a folder of their own.
        folder = "notebooks" if ref.owner == DEFAULT_OWNER else f"notebooks/{ref.owner}"
        target_path = path or f"{folder}/{session_id}{SUFFIXES[fmt]}"

        def build_and_write() -> ExportedNotebook:
            notebook = build_notebook(cells, title=f"Session {session_id}")
            data = render(notebook, fmt)
            written = self._write(target_path, data)
            return ExportedNotebook(path=written, size=len(data), cells=len(cells), fmt=fmt)

        return await anyio.to_thread.run_sync(build_and_write)

    def _write(self, path: str, data: bytes) -> str:
        target = self._workspace.resolve(path)
        if target.is_root:
            raise InvalidInputError(f"{target.shown} is the workspace folder, not a file")
        self._workspace.check_size(len(data), target.shown, what="notebook")
        with AtomicWriter(self._workspace, target.parent_parts, target.shown) as writer:
            writer.write(data)
            writer.commit(target, overwrite=True)
        return target.relative

    async def load(self, path: str) -> NotebookNode:
        """Read and validate a workspace notebook."""

        def read() -> NotebookNode:
            target = self._workspace.resolve(path)
            data, _ = self._workspace.read_bytes(target)
            return read_notebook(data, target.shown)

        return await anyio.to_thread.run_sync(read)

    async def run_notebook(
        self,
        path: str,
        session_id: SessionSpec,
        *,
        stop_on_error: bool = True,
        write_back: str | None = None,
        notebook: NotebookNode | None = None,
    ) -> NotebookRun:
        """Run every code cell in order in the session; optionally save the executed copy.

        ``notebook``: the notebook already loaded from ``path`` (so what was checked, e.g.
        approved by the user, is what runs); default: read it now.
        """
        if notebook is None:
            notebook = await self.load(path)
        cells = code_cells(notebook)
        run = NotebookRun(session_id="")
        executed = copy.deepcopy(notebook) if write_back else None
        for index, source in cells:
            outcome = await self._execution.run(
                ExecutionRequest(code=source, session_id=session_id)
            )
            run.session_id = outcome.result.session_id
            run.cells.append(CellRun(index=index, result=outcome.result))
            if executed is not None:
                _fill(executed.cells[index], outcome.result.execution_count, outcome)
            if outcome.result.status != "ok" and stop_on_error:
                run.stopped_at = index
                break
        if executed is not None and write_back is not None:
            data = render(executed, "ipynb")
            run.written = await anyio.to_thread.run_sync(self._write, write_back, data)
        return run


def _fill(cell: NotebookNode, execution_count: int | None, outcome: ExecutionOutcome) -> None:
    """Put an execution's count and outputs into a notebook code cell."""
    cell.execution_count = execution_count
    cell.outputs = [from_dict(o) for o in outputs_of(outcome.collected, execution_count)]
