"""Completion survives a half-written jedi cache: a killed kernel must not break the next.

Unsandboxed kernels share the user's jedi cache (``~/.cache/jedi``, parso's pickles of
parsed modules). parso writes a cache file in place, so a kernel killed mid-write leaves a
truncated file that every later kernel failed to load. The kernel program writes through
a temporary file and reads a broken file as a cache miss (``kernel_program.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import call, run


@pytest.fixture(params=[False, True], ids=["started", "forked"])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"sandbox": "none", "kernel_fork": request.param}


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Kernels of an unsandboxed server take the server's HOME: this test's own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


async def test_completion_works_over_truncated_cache_files(
    client: Client[Any], workspace: Path, own_home: Path
) -> None:
    (workspace / "shapes.py").write_text(
        "def circle_area(r):\n    return 3.14159 * r * r\n\n"
        "def circle_perimeter(r):\n    return 2 * 3.14159 * r\n"
    )
    await run(client, "import shapes")
    done = await call(client, "code_completion", code="shapes.circle_")
    assert {"circle_area", "circle_perimeter"} <= set(done["matches"])
    pickles = [p for p in (own_home / ".cache").rglob("*.pkl")]
    assert pickles, "jedi wrote no cache file: the test would prove nothing"
    assert not [p for p in (own_home / ".cache").rglob("*.tmp")]
    for path in pickles:  # what a kernel killed in the middle of a write leaves
        path.write_bytes(path.read_bytes()[:7])

    await call(client, "restart_kernel")
    await run(client, "import shapes")
    done = await call(client, "code_completion", code="shapes.circle_")
    assert {"circle_area", "circle_perimeter"} <= set(done["matches"])
