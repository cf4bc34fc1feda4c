"""Tool groups (toolsets) and which of them a server exposes."""

from __future__ import annotations

from collections.abc import Callable

from fastmcp import FastMCP

from python_mcp_server.errors import InvalidInputError
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools import execution, sessions

Registrar = Callable[[FastMCP, Services], None]

#: Every tool group, in registration order. Groups register their tools with a tag of
#: the group's name.
TOOLSETS: dict[str, Registrar] = {
    "execution": execution.register,
    "sessions": sessions.register,
}

#: Groups that ``default`` leaves out.
OPT_IN_TOOLSETS: frozenset[str] = frozenset({"compat"})


def select_toolsets(spec: str) -> list[str]:
    """Parse ``--toolsets``: a comma list of group names, ``default`` or ``all``."""
    names = [part.strip().lower() for part in spec.split(",") if part.strip()]
    if not names or names == ["default"]:
        return [name for name in TOOLSETS if name not in OPT_IN_TOOLSETS]
    if names == ["all"]:
        return list(TOOLSETS)
    unknown = [name for name in names if name not in TOOLSETS]
    if unknown:
        raise InvalidInputError(
            f"unknown toolset(s) {', '.join(unknown)}; known: {', '.join(TOOLSETS)}"
        )
    return [name for name in TOOLSETS if name in names]
