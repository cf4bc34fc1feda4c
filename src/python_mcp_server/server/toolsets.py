"""Tool groups (toolsets) and which of them a server exposes."""

from __future__ import annotations

from collections.abc import Callable

from fastmcp import FastMCP

from python_mcp_server.errors import InvalidInputError
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools import (
    compat,
    environments,
    execution,
    files,
    health,
    history,
    introspection,
    notebooks,
    packages,
    safety,
    sessions,
)

Registrar = Callable[[FastMCP, Services], None]


def _together(*registrars: Registrar) -> Registrar:
    """One group made of several tool modules."""

    def register(mcp: FastMCP, services: Services) -> None:
        for registrar in registrars:
            registrar(mcp, services)

    return register


#: Every tool group, in registration order. Groups register their tools with a tag of
#: the group's name.
TOOLSETS: dict[str, Registrar] = {
    "execution": _together(execution.register, introspection.register),
    "sessions": sessions.register,
    "files": files.register,
    "packages": packages.register,
    "environments": environments.register,
    "safety": safety.register,
    "health": health.register,
    "history": history.register,
    "notebooks": _together(notebooks.register, notebooks.register_views),
    "compat": compat.register,
}

#: Groups that ``default`` leaves out.
OPT_IN_TOOLSETS: frozenset[str] = frozenset({"compat", "notebooks"})

#: Groups registered after every other one, whatever their place in TOOLSETS: they replace
#: native tools of the same name (compat's ``health_check`` accepts both argument styles).
LATE_TOOLSETS: tuple[str, ...] = ("compat",)


def select_toolsets(spec: str) -> list[str]:
    """Parse ``--toolsets``: a comma list of group names, ``default`` or ``all``.

    ``default`` is every group but the opt-in ones; ``all`` is every group; both may be
    combined with names (``default,compat``). The result is in registration order, with
    the groups that replace native tools last.
    """
    names = [part.strip().lower() for part in spec.split(",") if part.strip()] or ["default"]
    chosen: set[str] = set()
    unknown = []
    for name in names:
        if name == "default":
            chosen.update(n for n in TOOLSETS if n not in OPT_IN_TOOLSETS)
        elif name == "all":
            chosen.update(TOOLSETS)
        elif name in TOOLSETS:
            chosen.add(name)
        else:
            unknown.append(name)
    if unknown:
        raise InvalidInputError(
            f"unknown toolset(s) {', '.join(unknown)}; known: {', '.join(TOOLSETS)}, default, all"
        )
    ordered = [n for n in TOOLSETS if n in chosen and n not in LATE_TOOLSETS]
    return ordered + [n for n in LATE_TOOLSETS if n in chosen]
