"""Bytecode the server writes ahead for sandboxed kernels: compiled, never run, stamped."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels.bytecode import compile_kernel_bytecode, source_paths


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking package whose import would fail loudly (so compiling it
    proves nothing ran), with a subpackage, and a single-module neighbour."""
    root = tmp_path / "site"
    folder = root / "pmcp_fake_pkg"
    (folder / "sub").mkdir(parents=True)
    (folder / "__init__.py").write_text("raise SystemExit('imported!')\n")
    (folder / "sub" / "__init__.py").write_text("")
    (folder / "sub" / "deep.py").write_text("VALUE = 1\n")
    (root / "pmcp_fake_module.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.syspath_prepend(str(root))
    return folder


def cached(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


def test_every_module_is_compiled_without_running_it(package: Path) -> None:
    names = ("pmcp_fake_pkg", "pmcp_fake_module", "pmcp_not_installed")
    assert source_paths(names) == [package, package.parent / "pmcp_fake_module.py"]
    compiled = compile_kernel_bytecode(names)
    assert compiled == [package, package.parent / "pmcp_fake_module.py"]
    sources = [*package.rglob("*.py"), package.parent / "pmcp_fake_module.py"]
    assert len(sources) == 4
    assert all(cached(source).is_file() for source in sources)


def test_a_compiled_package_is_skipped_until_it_changes(package: Path) -> None:
    assert compile_kernel_bytecode(["pmcp_fake_pkg"]) == [package]
    assert compile_kernel_bytecode(["pmcp_fake_pkg"]) == []
    (package / "added.py").write_text("X = 2\n")  # an upgrade changes the folder
    stat = package.stat()
    os.utime(package, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert compile_kernel_bytecode(["pmcp_fake_pkg"]) == [package]
    assert cached(package / "added.py").is_file()


def test_a_stop_ends_it_between_packages(package: Path) -> None:
    stop = threading.Event()
    stop.set()
    assert compile_kernel_bytecode(["pmcp_fake_pkg"], stop=stop) == []
    assert not cached(package / "sub" / "deep.py").exists()
