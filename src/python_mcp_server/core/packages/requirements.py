"""Validation of package specifiers: PEP 508 requirements and nothing else.

Everything an agent passes to install or uninstall is checked here before any process
runs. Only a name with optional extras, version specifiers and markers is accepted.
Options (``-r``, ``-e``, ``--index-url``), paths, URLs (including ``name @ url`` direct
references) and shell text are refused with INVALID_INPUT: where packages come from is
decided by the server's settings alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from python_mcp_server.errors import InvalidInputError

#: Most packages accepted in one call, and the longest specifier.
MAX_PACKAGES = 50
MAX_SPECIFIER_CHARS = 200

_SHELL_CHARS = frozenset("`$|&\\{}\n\r\t\0")
_OPERATOR_START = tuple("<>=!~")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".egg")
_SEPARATORS = re.compile(r"([\s,]+)")

INDEX_HINT = (
    "package sources come only from the server's settings "
    "(MCP_PIP_INDEX_URL, MCP_PIP_EXTRA_INDEX_URL, MCP_PIP_FIND_LINKS)"
)


@dataclass(frozen=True)
class PackageSpec:
    """One validated requirement."""

    requirement: Requirement
    #: The canonical distribution name (lower case, runs of ``-_.`` as ``-``).
    name: str

    @property
    def text(self) -> str:
        """The normalised specifier passed to the installer."""
        return str(self.requirement)

    @property
    def is_bare_name(self) -> bool:
        req = self.requirement
        return not req.extras and not req.specifier and req.marker is None

    def applies(self) -> bool:
        """Whether its marker (if any) holds for the server's interpreter."""
        marker = self.requirement.marker
        return marker is None or marker.evaluate()


def split_packages(packages: str | list[str]) -> list[str]:
    """The individual specifiers of a list, or of a comma/space separated string.

    In a string, pieces that start or continue a version specifier are joined back, so
    ``"numpy>=1.26,<3 pandas"`` and ``"numpy >= 1.26"`` stay whole. A string holding a
    marker (``;``) is one specifier; pass a list for several of those.
    """
    if isinstance(packages, list):
        return [item.strip() for item in packages if item.strip()]
    text = packages.strip()
    if not text:
        return []
    if ";" in text:
        return [text]
    parts = _SEPARATORS.split(text)
    items: list[str] = []
    pending_sep = ""
    for index, part in enumerate(parts):
        if index % 2 == 1:
            pending_sep = "," if "," in part else ""
            continue
        if not part:
            continue
        continues = items and (
            part.startswith(_OPERATOR_START)
            or items[-1].endswith(_OPERATOR_START)
            or items[-1].count("[") > items[-1].count("]")
        )
        if continues:
            items[-1] += pending_sep + part
        else:
            items.append(part)
    return items


def _refusal(item: str) -> str | None:
    """Why ``item`` is not a plain specifier, before parsing it; None when it may be."""
    if item.startswith("-"):
        return f"options are not accepted; {INDEX_HINT}"
    if len(item) > MAX_SPECIFIER_CHARS:
        return f"longer than {MAX_SPECIFIER_CHARS} characters"
    if any(char in _SHELL_CHARS for char in item) or any(ord(c) < 32 for c in item):
        return "shell text and control characters are not accepted"
    if "://" in item or "@" in item:
        return f"URLs and direct references (name @ url) are not accepted; {INDEX_HINT}"
    lowered = item.lower()
    if "/" in item or item.startswith((".", "~")) or lowered.endswith(_ARCHIVE_SUFFIXES):
        return f"paths and archive files are not accepted; {INDEX_HINT}"
    return None


def parse_specifier(item: str) -> PackageSpec:
    """Validate one specifier; INVALID_INPUT says why it is refused."""
    reason = _refusal(item)
    if reason is None:
        try:
            requirement = Requirement(item)
        except InvalidRequirement as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else "invalid"
            reason = f"not a PEP 508 requirement ({first_line})"
        else:
            if requirement.url is not None:
                reason = f"direct references are not accepted; {INDEX_HINT}"
            else:
                return PackageSpec(requirement, canonicalize_name(requirement.name))
    raise InvalidInputError(f"{item!r} is not a package specifier: {reason}")


def parse_packages(packages: str | list[str]) -> list[PackageSpec]:
    """Validate every specifier of a call; refuse the whole call if one is bad."""
    items = split_packages(packages)
    if not items:
        raise InvalidInputError("no packages given")
    if len(items) > MAX_PACKAGES:
        raise InvalidInputError(f"{len(items)} packages given; at most {MAX_PACKAGES} per call")
    return [parse_specifier(item) for item in items]


def parse_names(packages: str | list[str]) -> list[PackageSpec]:
    """Validate package names (for uninstall): no versions, extras or markers."""
    specs = parse_packages(packages)
    for spec in specs:
        if not spec.is_bare_name:
            raise InvalidInputError(
                f"{spec.text!r}: give package names only (no versions, extras or markers)"
            )
    return specs
