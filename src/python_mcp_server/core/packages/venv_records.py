"""The two files the server writes into every environment it manages, and reads back.

- The metadata file (``mcp-venv.json``): the environment's name, description, creation
  time, Python version and the tool that made it. It is read back as untrusted data (a
  kernel may have rewritten it): through ``DirectoryRoot`` (no link followed, size
  capped), parsed as JSON, anything but an object read as nothing recorded.
- The link file (``_python_mcp_server_link.pth``): one ``site.addsitedir(<server
  site-packages>)`` line per server site-packages folder, so the environment's kernels
  import ipykernel and the server's packages without installing them.

Both are written whole and atomically (``DirectoryRoot.replace_file``): a link planted
in a file's place is replaced, never written through. Callers pass names already
checked (``environments.validate_venv_name``).
"""

from __future__ import annotations

import contextlib
import json
import site
import sysconfig
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from python_mcp_server.core.workspace.dirfd import DirectoryRoot
from python_mcp_server.errors import ServerError

METADATA_FILE = "mcp-venv.json"
#: Largest metadata file read back (it holds a name, a description and a few facts).
METADATA_LIMIT = 256 * 1024
LINK_FILE = "_python_mcp_server_link.pth"
#: Largest link file read back (a line per server site-packages folder).
LINK_LIMIT = 64 * 1024


def server_site_dirs() -> tuple[Path, ...]:
    """The server's own site-packages folders, which managed environments see."""
    candidates = [*site.getsitepackages(), sysconfig.get_path("purelib"),
                  sysconfig.get_path("platlib")]  # fmt: skip
    found: list[Path] = []
    for entry in candidates:
        path = Path(entry)
        if path.is_dir() and path not in found:
            found.append(path)
    return tuple(found)


def link_file_text(dirs: Sequence[Path]) -> str:
    return "".join(f"import site; site.addsitedir({str(d)!r})\n" for d in dirs)


def read_link_file(files: DirectoryRoot, site_parts: tuple[str, ...], name: str) -> bytes:
    """The link file in the site-packages folder ``site_parts`` of environment ``name``."""
    shown = f"environment {name!r} link file"
    return files.read_small((*site_parts, LINK_FILE), shown, limit=LINK_LIMIT)


def write_link_file(
    files: DirectoryRoot, site_parts: tuple[str, ...], name: str, text: str
) -> None:
    files.replace_file((*site_parts, LINK_FILE), f"environment {name!r} link file", text.encode())


def recorded_time(value: object) -> datetime | None:
    """A recorded creation time, or None when it is missing or not a timestamp."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def read_metadata(files: DirectoryRoot, name: str) -> dict[str, Any]:
    """Environment ``name``'s metadata, or only its name when none can be read."""
    shown = f"environment {name!r} metadata"
    with contextlib.suppress(ServerError, ValueError):
        raw = files.read_small((name, METADATA_FILE), shown, limit=METADATA_LIMIT)
        data = json.loads(raw)
        if isinstance(data, dict):
            return data
    return {"name": name}


def write_metadata(files: DirectoryRoot, name: str, data: dict[str, Any]) -> None:
    """Replace the metadata file atomically; a link in its place is replaced, never
    written through."""
    files.replace_file(
        (name, METADATA_FILE),
        f"environment {name!r} metadata",
        json.dumps(data, indent=2).encode("utf-8"),
    )
