"""What a target's folders hold: distributions read as data, and what an install changed.

Folders a kernel could have written are read by ``SCAN_PROGRAM`` in the sandbox (only the
header of each METADATA / PKG-INFO, never a FIFO or device), and its answer is checked by
``checked_distributions`` before anything uses it. ``scan_distributions`` reads folders the
server itself owns.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from python_mcp_server.models.packages import PackageChange

#: name (canonical) -> (name as the distribution spells it, version)
Distributions = dict[str, tuple[str, str]]
#: What a folder below a target holds, and its location ("environment", "server").
Shared = tuple[Distributions, str]


#: Seconds a reading of a target's packages may take.
SCAN_TIMEOUT = 60.0
#: Run by the server's own interpreter (``-I -S``) in the sandbox: for each folder given,
#: the distributions in it as [canonical name, name, version], the first of a name wins.
#: Only the header of each METADATA / PKG-INFO is read (a bounded read of a regular file,
#: never a FIFO or device a kernel planted): parsing whole files took ~1 s per scan.
SCAN_PROGRAM = """\
import json, os, re, stat, sys
def head(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 65536).decode("utf-8", "replace")
    finally:
        os.close(fd)
out = []
for folder in sys.argv[1:]:
    found = {}
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        entries = []
    for entry in entries:
        path = os.path.join(folder, entry)
        if entry.endswith(".dist-info"):
            path = os.path.join(path, "METADATA")
        elif entry.endswith(".egg-info"):
            path = os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path
        else:
            continue
        fields = {}
        for line in head(path).splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
        name, version = fields.get("name"), fields.get("version")
        if name and version:
            key = re.sub(r"[-_.]+", "-", name).lower()
            found.setdefault(key, [key, name[:200], version[:100]])
        if len(found) >= 20000:
            break
    out.append(list(found.values()))
print(json.dumps(out))
"""


def scan_distributions(dirs: Sequence[Path]) -> Distributions:
    """Distributions found in ``dirs``; the first folder holding a name wins."""
    found: Distributions = {}
    for dist in importlib.metadata.distributions(path=[str(d) for d in dirs]):
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except (KeyError, OSError):
            continue
        if not name or not version:
            continue
        found.setdefault(canonicalize_name(name), (str(name), str(version)))
    return found


def checked_distributions(entries: object) -> Distributions:
    """The scan program's answer for one folder, checked (it ran where a kernel could
    have planted files, so its output is data to validate, not to trust)."""
    found: Distributions = {}
    if not isinstance(entries, list):
        return found
    for entry in entries:
        if (
            isinstance(entry, list)
            and len(entry) == 3
            and all(isinstance(item, str) and 0 < len(item) <= 200 for item in entry)
        ):
            found.setdefault(canonicalize_name(entry[0]), (entry[1], entry[2]))
    return found


def distribution_changes(before: Distributions, after: Distributions) -> list[PackageChange]:
    changes = []
    for key in sorted(set(before) | set(after)):
        old = before.get(key)
        new = after.get(key)
        if old is not None and new is not None and old[1] == new[1]:
            continue
        name = (new or old or (key, ""))[0]
        changes.append(
            PackageChange(
                name=name,
                version=new[1] if new else None,
                previous_version=old[1] if old else None,
            )
        )
    return changes
