"""Per-session package folders: what a session installs for itself, seen by it alone.

Environments are shared (every session of the default environment runs it), so kernels
get them read-only. What one session installs (``%pip install``, ``!pip install``,
``install_dependencies(session_id=...)``, auto-install) goes instead to a folder that only
that session's kernel mounts writable and puts on ``PYTHONPATH`` (so a ``.pth`` file in
it is never processed), and that is removed when the session ends.

A folder lives under ``<venvs>/.session-packages/<random>/``:

- ``site/``: the install target (``--target``), first on the kernel's ``PYTHONPATH``;
  console scripts of its packages land in ``site/bin``;
- ``bin/``: ``pip`` and ``pip3`` for shell escapes (``!pip install``), which run the
  kernel's interpreter with ``-m pip``: the pip shim that installs into ``site/``;
- ``cache/``: the kernel-side installer's cache, private to the session.

A kernel gets its folder when it is launched. A pooled kernel gets a fresh one, which the
session taking the kernel claims; a replacement kernel of a session takes over what the
session installed before. The registry is the server's record of which folder belongs to
which session: nothing is read back from a folder to decide anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FOLDER_NAME = ".session-packages"

_SHELL_PIP = """#!/bin/sh
# pip for shell escapes: the session's interpreter with the pip shim (installs into the
# session's own package folder).
exec {python} -m pip "$@"
"""


@dataclass(frozen=True)
class PackageFolder:
    """One session's package folder."""

    root: Path

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def cache(self) -> Path:
        return self.root / "cache"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


class SessionPackages:
    """The registry of package folders: which session owns which, and their lifetime."""

    def __init__(self, venvs_path: Path) -> None:
        self.root = venvs_path / FOLDER_NAME
        self._by_session: dict[str, PackageFolder] = {}

    def create(self, python: str) -> PackageFolder:
        """A fresh folder for a kernel of the interpreter ``python`` (not yet owned)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = PackageFolder(self.root / uuid.uuid4().hex)
        folder.root.mkdir(mode=0o700)
        for sub in (folder.site, folder.bin, folder.cache):
            sub.mkdir(mode=0o700)
        script = _SHELL_PIP.format(python=_quote(python))
        for name in ("pip", "pip3"):
            path = folder.bin / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
            with os.fdopen(fd, "w") as handle:
                handle.write(script)
        return folder

    def for_session(self, session_id: str) -> PackageFolder | None:
        return self._by_session.get(session_id)

    def register(self, session_id: str, folder: PackageFolder) -> None:
        """Record ``folder`` as the session's (the session's first kernel launched with it)."""
        self._by_session[session_id] = folder

    def claim(self, session_id: str, folder: PackageFolder) -> None:
        """Make ``folder`` (a pooled kernel's) the session's, moving over what the session
        installed with an earlier kernel (that kernel has ended by now)."""
        previous = self._by_session.get(session_id)
        self._by_session[session_id] = folder
        if previous is None or previous == folder:
            return
        try:
            if previous.site.is_dir() and not previous.site.is_symlink():
                shutil.rmtree(folder.site)
                os.rename(previous.site, folder.site)
        except OSError as exc:
            logger.warning("session %s: packages not carried over: %s", session_id, exc)
            with contextlib.suppress(OSError):
                folder.site.mkdir(mode=0o700)
        _remove(previous)

    async def release(self, session_id: str) -> None:
        """Remove the session's folder (the session has ended)."""
        folder = self._by_session.pop(session_id, None)
        if folder is not None:
            await asyncio.to_thread(_remove, folder)

    async def discard(self, folder: PackageFolder) -> None:
        """Remove a folder no session owns (its kernel failed to start)."""
        if folder not in self._by_session.values():
            await asyncio.to_thread(_remove, folder)

    async def clear(self) -> None:
        """Remove every folder (at start: an earlier server's; at stop: all sessions ended)."""
        self._by_session.clear()
        await asyncio.to_thread(shutil.rmtree, self.root, True)


def _remove(folder: PackageFolder) -> None:
    # rmtree never follows links a kernel planted: it removes the links themselves.
    shutil.rmtree(folder.root, ignore_errors=True)
