"""Notebook documents: building a valid nbformat 4 notebook from recorded cells, rendering
it as ipynb, HTML or a Python script, and reading a notebook a caller gave us.

Everything here is pure: no kernel, no file system. Reading validates strictly (JSON,
``nbformat`` 4, the schema) so a hostile file is refused before any of it is used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import nbformat
from nbformat import NotebookNode

from python_mcp_server.core.notebooks.cells import Cell
from python_mcp_server.errors import InvalidInputError, NotebookInvalidError

NotebookFormat = Literal["ipynb", "html", "py"]

#: File suffix of each export format.
SUFFIXES: dict[str, str] = {"ipynb": ".ipynb", "html": ".html", "py": ".py"}

_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
_LANGUAGE = {"name": "python", "pygments_lexer": "ipython3", "codemirror_mode": "ipython"}


def build_notebook(cells: Sequence[Cell], *, title: str) -> NotebookNode:
    """A validated nbformat 4 notebook of the cells, a title note first."""
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": _KERNELSPEC, "language_info": _LANGUAGE}
    )
    notebook.cells.append(nbformat.v4.new_markdown_cell(f"# {title}"))
    for cell in cells:
        if cell.kind == "note":
            notebook.cells.append(nbformat.v4.new_markdown_cell(cell.source))
            continue
        outputs = [nbformat.from_dict(output) for output in cell.outputs]
        notebook.cells.append(
            nbformat.v4.new_code_cell(
                cell.source, execution_count=cell.execution_count, outputs=outputs
            )
        )
    nbformat.validate(notebook)
    return notebook


def render(notebook: NotebookNode, fmt: NotebookFormat) -> bytes:
    """The notebook as the bytes of a file of the given format."""
    if fmt == "ipynb":
        text: str = nbformat.writes(notebook, version=4)
        return text.encode("utf-8")
    # Imported only when used: nbconvert and its templates cost time and memory at start.
    from nbconvert import HTMLExporter, PythonExporter

    exporter = HTMLExporter() if fmt == "html" else PythonExporter()
    body, _ = exporter.from_notebook_node(notebook)
    return str(body).encode("utf-8")


def read_notebook(data: bytes, shown: str) -> NotebookNode:
    """Parse and validate a notebook file; refuse anything but a valid nbformat 4."""
    try:
        raw: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookInvalidError(f"{shown} is not a JSON notebook: {exc}") from None
    if not isinstance(raw, dict) or raw.get("nbformat") != 4:
        found = raw.get("nbformat") if isinstance(raw, dict) else type(raw).__name__
        raise NotebookInvalidError(
            f"{shown} is not an nbformat 4 notebook (nbformat: {found!r}); open and save it "
            "in a current Jupyter to convert it"
        )
    try:
        # reads() joins the line lists a file stores sources and outputs as.
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(notebook)
    except nbformat.ValidationError as exc:
        raise NotebookInvalidError(f"{shown} is not a valid notebook: {exc.message}") from None
    return notebook


def code_cells(notebook: NotebookNode) -> list[tuple[int, str]]:
    """(index, source) of each non-empty code cell, in order."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and str(cell.source).strip():
            found.append((index, str(cell.source)))
    if not found:
        raise InvalidInputError("the notebook has no code cell to run")
    return found
