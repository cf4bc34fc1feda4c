"""Compiled bytecode for what every kernel imports, written by the server before kernels start.

A sandboxed kernel sees its environment read-only and runs as the kernel user, so Python
cannot write the ``__pycache__`` of a module it has to compile: without caches written
beforehand, every sandboxed kernel would compile ipykernel, IPython and their
dependencies again as it starts (about 2 s more per start on a 2-core machine; installers
such as ``uv pip install`` write no bytecode unless asked). The server compiles them once,
outside the sandbox, into the folders of its own installation, which no kernel can write.
Compiling reads the source and runs none of it. A package compiled once is marked in its
own ``__pycache__`` (a stamp naming the package folder's modification time, which an
upgrade changes), so later server starts check one file per package.
"""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import threading
from collections.abc import Iterable
from pathlib import Path

#: Top-level packages a kernel imports as it starts (ipykernel's own dependencies).
KERNEL_PACKAGES: tuple[str, ...] = (
    "ipykernel",
    "IPython",
    "jupyter_client",
    "jupyter_core",
    "zmq",
    "tornado",
    "traitlets",
    "comm",
    "debugpy",
    "pygments",
    "prompt_toolkit",
    "jedi",
    "parso",
    "stack_data",
    "executing",
    "asttokens",
    "pure_eval",
    "wcwidth",
    "pexpect",
    "ptyprocess",
    "matplotlib_inline",
    "dateutil",
    "platformdirs",
    "packaging",
    "psutil",
    "decorator",
    "nest_asyncio",
    "six",
)


def source_paths(names: Iterable[str]) -> list[Path]:
    """The installed folder (a package) or file (a module) of each name found; found
    without importing anything (top-level names only)."""
    paths: list[Path] = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        origin = Path(spec.origin)
        paths.append(origin.parent if spec.submodule_search_locations else origin)
    return paths


def _stamp(folder: Path) -> tuple[Path, str]:
    return folder / "__pycache__" / ".pmcp-compiled", str(folder.stat().st_mtime_ns)


def compile_kernel_bytecode(
    names: Iterable[str] = KERNEL_PACKAGES, stop: threading.Event | None = None
) -> list[Path]:
    """Write the missing or stale ``.pyc`` files of these packages (a package stamped as
    compiled is skipped); returns the paths compiled now. A folder the server cannot
    write (a system installation) is left as it is; ``stop`` ends it between packages."""
    done: list[Path] = []
    for path in source_paths(names):
        if stop is not None and stop.is_set():
            break
        if not path.is_dir():
            compileall.compile_file(path, quiet=2)
            done.append(path)
            continue
        with contextlib.suppress(OSError):
            stamp, value = _stamp(path)
            if stamp.is_file() and stamp.read_text() == value:
                continue
        if compileall.compile_dir(path, quiet=2, workers=1):
            with contextlib.suppress(OSError):
                stamp, value = _stamp(path)
                stamp.write_text(value)
        done.append(path)
    return done
