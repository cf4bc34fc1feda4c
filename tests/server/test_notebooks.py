"""Notebooks through the real protocol: export what a session ran, import and run a notebook."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fastmcp import Client

from python_mcp_server.server.app import build_server
from python_mcp_server.settings import Settings
from tests.helpers import call, kernel_children, run, tool_error, wait_gone

pytestmark = pytest.mark.parametrize(
    "settings_overrides", [{"toolsets": "default,notebooks,scripts"}]
)

PLOT = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [3, 1, 2])
plt.show()
"""


def read_nb(path: Path) -> Any:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return notebook


def code_of(notebook: Any) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


async def test_export_holds_code_output_errors_and_images(
    client: Client[Any], workspace: Path
) -> None:
    await run(client, "x = 21")
    await run(client, "print('hi')\nx * 2")
    await run(client, "1/0")
    await run(client, PLOT)
    result = await client.call_tool("export_notebook", {"session_id": "default"})
    exported = result.structured_content
    assert exported is not None
    assert exported["path"] == "notebooks/default.ipynb"
    links = [c for c in result.content if c.type == "resource_link"]
    assert [str(link.uri) for link in links] == ["workspace://notebooks/default.ipynb"]

    notebook = read_nb(workspace / exported["path"])
    assert code_of(notebook) == ["x = 21", "print('hi')\nx * 2", "1/0", PLOT]
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == [1, 2, 3, 4]
    printed = cells[1].outputs
    assert printed[0] == {"output_type": "stream", "name": "stdout", "text": "hi\n"}
    assert printed[1]["output_type"] == "execute_result"
    assert printed[1]["data"]["text/plain"] == "42"
    error = cells[2].outputs[-1]
    assert (error["output_type"], error["ename"]) == ("error", "ZeroDivisionError")
    images = [o for o in cells[3].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    assert base64.b64decode(images[0]["data"]["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")


async def test_html_and_script_exports(client: Client[Any], workspace: Path) -> None:
    await run(client, "greeting = 'hello from the kernel'\nprint(greeting)")
    html = await call(client, "export_notebook", session_id="default", format="html")
    assert html["path"] == "notebooks/default.html"
    page = (workspace / html["path"]).read_text()
    assert "<html" in page
    assert "hello from the kernel" in page
    script = await call(
        client, "export_notebook", session_id="default", format="py", path="out/run.py"
    )
    assert script["path"] == "out/run.py"
    assert "greeting = 'hello from the kernel'" in (workspace / "out/run.py").read_text()


async def test_a_restart_is_a_note_where_it_happened(client: Client[Any], workspace: Path) -> None:
    await run(client, "a = 1")
    await call(client, "restart_kernel", session_id="default")
    await run(client, "b = 2")
    await call(client, "export_notebook", session_id="default")
    notebook = read_nb(workspace / "notebooks/default.ipynb")
    kinds = [(c.cell_type, c.source) for c in notebook.cells[1:]]
    assert kinds[0] == ("code", "a = 1")
    assert kinds[1][0] == "markdown"
    assert "Kernel replaced" in kinds[1][1]
    assert kinds[2] == ("code", "b = 2")


async def test_import_runs_cells_in_the_session_and_writes_back(
    client: Client[Any], workspace: Path
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("total = sum(range(5))"),
        nbformat.v4.new_code_cell("print(total)"),
        nbformat.v4.new_code_cell("total * 10"),
    ]
    nbformat.write(notebook, workspace / "in.ipynb")
    done = await call(client, "import_notebook", path="in.ipynb", write_back="out.ipynb")
    assert done["ran"] == 3
    assert [c["cell"] for c in done["cells"]] == [1, 2, 3]
    assert done["cells"][1]["stdout"] == "10\n"
    assert done["cells"][2]["result"] == "100"
    assert "stopped_at" not in done
    assert (await run(client, "total"))["result"] == "10"  # the variables stay in the session
    executed = read_nb(workspace / "out.ipynb")
    assert executed.cells[2].outputs[0]["text"] == "10\n"
    assert executed.cells[3].execution_count is not None
    assert json.loads((workspace / "in.ipynb").read_text())["cells"][1]["outputs"] == []


async def test_import_stops_on_error_unless_told_not_to(
    client: Client[Any], workspace: Path
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("first = 1"),
        nbformat.v4.new_code_cell("raise KeyError('nope')"),
        nbformat.v4.new_code_cell("third = 3"),
    ]
    nbformat.write(notebook, workspace / "fails.ipynb")
    stopped = await call(client, "import_notebook", path="fails.ipynb")
    assert stopped["stopped_at"] == 1
    assert stopped["cells"][1]["error"] == "KeyError: 'nope'"
    assert stopped["ran"] == 2
    went_on = await call(client, "import_notebook", path="fails.ipynb", stop_on_error=False)
    assert went_on["ran"] == 3
    assert (await run(client, "third"))["result"] == "3"


async def test_bad_notebooks_and_paths_are_refused_with_codes(
    client: Client[Any], workspace: Path, tmp_path: Path
) -> None:
    (workspace / "broken.ipynb").write_text("{not json")
    text = await tool_error(client, "import_notebook", {"path": "broken.ipynb"})
    assert text.startswith("NOTEBOOK_INVALID:")
    old = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}
    (workspace / "old.ipynb").write_text(json.dumps(old))
    text = await tool_error(client, "import_notebook", {"path": "old.ipynb"})
    assert text.startswith("NOTEBOOK_INVALID:")
    assert "nbformat 4" in text
    bad_schema = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"x": 1}]}
    (workspace / "schema.ipynb").write_text(json.dumps(bad_schema))
    text = await tool_error(client, "import_notebook", {"path": "schema.ipynb"})
    assert text.startswith("NOTEBOOK_INVALID:")
    text = await tool_error(client, "import_notebook", {"path": "../outside.ipynb"})
    assert text.startswith("PATH_OUTSIDE_WORKSPACE:")
    text = await tool_error(client, "export_notebook", {"session_id": "never-ran"})
    assert text.startswith("SESSION_NOT_FOUND:")

    await run(client, "y = 1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "linked").symlink_to(outside)
    text = await tool_error(
        client, "export_notebook", {"session_id": "default", "path": "linked/nb.ipynb"}
    )
    assert text.startswith("PATH_OUTSIDE_WORKSPACE:")
    assert list(outside.iterdir()) == []


async def test_export_after_a_server_restart(workspace: Path, settings: Settings) -> None:
    before = kernel_children()
    async with Client(build_server(settings)) as first:
        await run(first, "kept = 'across restarts'", session_id="default")
    async with Client(build_server(settings)) as second:
        exported = await call(second, "export_notebook", session_id="default")
    assert code_of(read_nb(workspace / exported["path"])) == ["kept = 'across restarts'"]
    assert not wait_gone(kernel_children() - before)


async def test_a_script_run_in_the_kernel_is_a_note_and_a_run_line(
    client: Client[Any], workspace: Path
) -> None:
    await call(client, "save_script", name="hello", content="print('from a script')")
    await call(client, "run_script", path="scripts/hello.py", mode="kernel", args=["a b"])
    await call(client, "export_notebook", session_id="default")
    notebook = read_nb(workspace / "notebooks/default.ipynb")
    note, cell = notebook.cells[1], notebook.cells[2]
    assert note.cell_type == "markdown"
    assert "scripts/hello.py" in note.source
    assert cell.source == "%run scripts/hello.py 'a b'"
    assert cell.outputs[0]["text"] == "from a script\n"
    assert str(workspace) not in nbformat.writes(notebook)


async def test_a_display_updated_in_place_is_one_output(
    client: Client[Any], workspace: Path
) -> None:
    code = (
        "from IPython.display import display\n"
        "handle = display('step 0', display_id=True)\n"
        "for step in range(1, 50):\n"
        "    handle.update(f'step {step}')\n"
        "display('after')"
    )
    result = await run(client, code)
    texts = [item.get("text") for item in result["outputs"]]
    assert texts == ["'step 49'", "'after'"]
    await call(client, "export_notebook", session_id="default")
    notebook = read_nb(workspace / "notebooks/default.ipynb")
    (cell,) = [c for c in notebook.cells if c.cell_type == "code"]
    assert [o["data"]["text/plain"] for o in cell.outputs] == ["'step 49'", "'after'"]
