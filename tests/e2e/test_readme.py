"""The README's Python examples run as written against a started server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import LaunchedServer

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_the_examples_it_promises() -> None:
    blocks = python_blocks()
    assert any("fastmcp import Client" in block for block in blocks)
    assert any("import httpx" in block for block in blocks)
    assert any("plt.show()" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(http_server: LaunchedServer, tmp_path: Path, index: int) -> None:
    code = python_blocks()[index].replace("http://127.0.0.1:8000", http_server.url)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "MCP_AUTH_TOKEN": http_server.token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    if "plt.show()" in code:
        assert (tmp_path / "sine.png").read_bytes().startswith(b"\x89PNG")
        assert "outputs/" in done.stdout
    elif "fastmcp import Client" in code:
        assert done.stdout.strip() == "42"
    else:
        assert '"result":"2"' in done.stdout.replace(" ", "") or "'2'" in done.stdout
