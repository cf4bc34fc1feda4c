"""Reading an environment's own files as untrusted data: no link followed, sizes capped.

An environment's folder may hold files a kernel wrote (a sandboxed install runs a package's
build with the folder writable; an unsandboxed server's kernels can write anything), so
``list_venvs`` and the paths the server derives from an environment never trust them:
every file is opened through ``DirectoryRoot`` (descriptors, ``O_NOFOLLOW``, a FIFO or
device refused, a size cap), folders are walked by descriptor (``os.fwalk``, links never
entered), and what is read is parsed as data and checked (a version is digits and dots).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat

from python_mcp_server.core.workspace.dirfd import DIR_FLAGS, READ_FLAGS, DirectoryRoot
from python_mcp_server.errors import ServerError

#: Largest pyvenv.cfg read (a real one is a few hundred bytes).
PYVENV_LIMIT = 64 * 1024
#: Bytes of a distribution's METADATA read: its header (name, version) comes first.
METADATA_HEAD = 64 * 1024
#: What a Python version recorded in pyvenv.cfg may look like ("3.11.7", "3.13.0rc1").
VERSION = re.compile(r"^\d{1,3}\.\d{1,3}(\.\d{1,3})?([a-z]{1,5}\d{0,3})?$")
UNKNOWN = "unknown"

#: name (canonical) -> (name as the distribution spells it, version)
Distributions = dict[str, tuple[str, str]]


def _entry_mode(files: DirectoryRoot, parts: tuple[str, ...]) -> int | None:
    """The mode of the last part itself (a link is reported as a link), or None."""
    try:
        parent = files.open_dir(parts[:-1], "environment folder")
    except ServerError:
        return None
    try:
        return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        return None
    finally:
        os.close(parent)


def has_entry(files: DirectoryRoot, parts: tuple[str, ...]) -> bool:
    """Whether the name exists (whatever it is: nothing is followed to find out)."""
    return _entry_mode(files, parts) is not None


def is_regular_file(files: DirectoryRoot, parts: tuple[str, ...]) -> bool:
    """Whether the name is a regular file itself (not a link to one)."""
    mode = _entry_mode(files, parts)
    return mode is not None and stat.S_ISREG(mode)


def python_version(files: DirectoryRoot, name: str) -> str:
    """The version an environment's pyvenv.cfg records, if it is a plain, small regular
    file holding a well-formed version; ``"unknown"`` otherwise."""
    try:
        raw = files.read_small((name, "pyvenv.cfg"), "pyvenv.cfg", limit=PYVENV_LIMIT)
    except ServerError:
        return UNKNOWN
    for line in raw.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            value = value.strip()
            return value if VERSION.match(value) else UNKNOWN
    return UNKNOWN


def _head(name: str, dir_fd: int) -> str:
    """The first bytes of a regular file in ``dir_fd`` (a link, FIFO or device: "")."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.pread(fd, METADATA_HEAD, 0).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _metadata_text(entry: str, folder: int) -> str:
    """A distribution entry's metadata header: ``X.dist-info/METADATA``,
    ``X.egg-info/PKG-INFO`` or an ``X.egg-info`` file; a link anywhere gives ""."""
    if entry.endswith(".egg-info"):
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.stat(entry, dir_fd=folder, follow_symlinks=False).st_mode):
                return _head(entry, folder)
    inner = "METADATA" if entry.endswith(".dist-info") else "PKG-INFO"
    try:
        sub = os.open(entry, DIR_FLAGS, dir_fd=folder)
    except OSError:
        return ""
    try:
        return _head(inner, sub)
    finally:
        os.close(sub)


def scan(files: DirectoryRoot, parts: tuple[str, ...]) -> Distributions:
    """The distributions in one site-packages folder, read as untrusted data (the first
    of a name wins, names and versions capped); a folder reached through a link: none."""
    try:
        folder = files.open_dir(parts, "site-packages")
    except ServerError:
        return {}
    found: Distributions = {}
    try:
        for entry in sorted(os.listdir(folder)):
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            fields: dict[str, str] = {}
            for line in _metadata_text(entry, folder).splitlines():
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
            dist, version = fields.get("name"), fields.get("version")
            if dist and version:
                key = re.sub(r"[-_.]+", "-", dist).lower()[:200]
                found.setdefault(key, (dist[:200], version[:100]))
    except OSError:
        pass
    finally:
        os.close(folder)
    return found


def tree_size(files: DirectoryRoot, name: str) -> int:
    """Bytes of the files under an environment, walked by descriptor: a link is counted as
    itself, never entered (even one swapped in while the walk runs)."""
    try:
        root = files.open_dir((name,), "environment folder")
    except ServerError:
        return 0
    total = 0
    try:
        for _folder, _dirs, names, folder_fd in os.fwalk(".", dir_fd=root):
            for entry in names:
                with contextlib.suppress(OSError):
                    total += os.stat(entry, dir_fd=folder_fd, follow_symlinks=False).st_size
    except OSError:
        pass
    finally:
        os.close(root)
    return total
