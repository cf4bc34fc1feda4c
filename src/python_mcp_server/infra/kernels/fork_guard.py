"""Whether a sandboxed kernel of an environment may be forked from its template.

A sandboxed template (``sandbox_fork.py``) is the server's own interpreter importing from
the server's own site-packages; it never sees an environment. Each child then takes its
environment's ``sys.path`` (``environment_program.py``), but what the template imported
stays imported: in an environment that installs a module of the same name, a forked
kernel would use the template's module where a kernel bubblewrap starts uses the
environment's. Such kernels start the ordinary way, and so do kernels of an environment
whose interpreter is not the server's, or that holds IPython or Jupyter configuration
(the template read the server's).

What an environment provides is read here, by the server, as data: folder entries, the
path lines of ``.pth`` files and ``top_level.txt`` files (regular files only, links not
followed, bounded reads). The environment is written by installs an agent chooses, so a
misleading folder is possible; it only costs speed, never safety, since the template
runs none of it either way.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

#: Longest file read (a ``.pth`` or ``top_level.txt``).
READ_LIMIT = 64 * 1024
#: Most entries looked at per folder.
ENTRY_LIMIT = 20000
#: Most folders named by ``.pth`` files looked into, per site folder.
PTH_FOLDER_LIMIT = 64
#: Suffixes of importable files: the module name is what comes before the first dot.
_MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")
#: Configuration an environment may hold that a kernel reads as it starts.
CONFIG_FOLDERS = ("etc/ipython", "etc/jupyter")


def _read(path: str) -> str:
    """A regular file's first ``READ_LIMIT`` bytes; "" for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, READ_LIMIT).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _entries(folder: str) -> list[os.DirEntry[str]]:
    found: list[os.DirEntry[str]] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                found.append(entry)
                if len(found) >= ENTRY_LIMIT:
                    break
    except OSError:
        pass
    return found


def _module_names(entries: Iterable[os.DirEntry[str]]) -> set[str]:
    names: set[str] = set()
    for entry in entries:
        name = entry.name
        if name.endswith((".dist-info", ".egg-info")) or name == "__pycache__":
            continue
        try:
            folder = entry.is_dir(follow_symlinks=False) or entry.is_symlink()
        except OSError:
            continue
        if folder and "." not in name:
            names.add(name)
        elif name.endswith(_MODULE_SUFFIXES):
            names.add(name.partition(".")[0])
    return names


def provided(folder: Path) -> set[str]:
    """Top-level module names a site folder provides: its entries, those of the folders
    its ``.pth`` files name (one level) and the ``top_level.txt`` of its distributions."""
    entries = _entries(str(folder))
    names = _module_names(entries)
    named: list[str] = []  # the folders the .pth files name, in the order site reads them
    for entry in sorted(entries, key=lambda found: found.name):
        if entry.name.endswith(".pth"):
            for line in _read(entry.path).splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    named.append(os.path.join(folder, line))
    for path in named[:PTH_FOLDER_LIMIT]:
        names |= _module_names(_entries(path))
    for entry in entries:
        if entry.name.endswith((".dist-info", ".egg-info")):
            for line in _read(os.path.join(entry.path, "top_level.txt")).splitlines():
                top = line.strip().replace("/", ".").partition(".")[0]
                if top:
                    names.add(top)
    return names


def site_folders(root: Path) -> list[Path]:
    """An environment's site-packages, as the server's interpreter would name them."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    libs = dict.fromkeys(["lib", sys.platlibdir])
    return [root / lib / version / "site-packages" for lib in libs]


def path_folders(env: Mapping[str, str]) -> list[Path]:
    """The folders a kernel's PYTHONPATH names (its session's own packages)."""
    return [Path(entry) for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]


def refusal(
    python: str, imported: Iterable[str], failures: Mapping[str, str] | None = None
) -> str | None:
    """Why kernels of the environment of ``python`` (its ``bin/python``, as the server
    records it) must not be forked from a template that imported ``imported`` and failed
    to import ``failures``; None when they may be."""
    if failures:  # it sees the server's packages only: a kernel may find them
        listed = ", ".join(sorted(failures))
        return f"the fork template could not import {listed} from the server's packages"
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        return "its interpreter is not the server's"
    root = Path(python).parent.parent
    for config in CONFIG_FOLDERS:
        if os.path.lexists(root / config):
            return f"it holds {config} (kernels read it as they start)"
    return shadowed(site_folders(root), imported)


def shadowed(folders: Sequence[Path], imported: Iterable[str]) -> str | None:
    """Why a kernel with the package folders ``folders`` must not be forked from a
    template that imported ``imported``: the modules they would shadow; None if none."""
    wanted = set(imported)
    clash: set[str] = set()
    for folder in folders:
        clash |= provided(folder) & wanted
    if not clash:
        return None
    listed = ", ".join(sorted(clash)[:8])
    return f"it installs {listed}, which the fork template imported from the server's packages"
