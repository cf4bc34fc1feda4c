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

#: Every tool group and the tool modules that hold its tools, in registration order. A
#: module may hold tools of several groups; each tool carries its group as a tag, and the
#: tools of groups not selected are hidden (``register_toolsets``).
TOOLSETS: dict[str, tuple[Registrar, ...]] = {
    "execution": (execution.register, introspection.register),
    "introspection": (introspection.register,),
    "sessions": (sessions.register,),
    "files": (files.register,),
    "scripts": (files.register,),
    "packages": (packages.register,),
    "health": (health.register,),
    "diagnostics": (health.register, sessions.register, files.register),
    "environments": (environments.register,),
    "safety": (safety.register,),
    "history": (history.register,),
    "notebooks": (notebooks.register, notebooks.register_views),
    "compat": (compat.register,),
}

#: Groups that ``default`` leaves out: the default is what an agent needs every day (run
#: code, sessions, files, packages, health); the rest is asked for by name.
OPT_IN_TOOLSETS: frozenset[str] = frozenset(
    {
        "introspection",
        "scripts",
        "diagnostics",
        "environments",
        "safety",
        "history",
        "notebooks",
        "compat",
    }
)

#: Groups registered after every other one, whatever their place in TOOLSETS: they replace
#: native tools of the same name (compat's ``health_check`` accepts both argument styles).
LATE_TOOLSETS: tuple[str, ...] = ("compat",)


def register_toolsets(mcp: FastMCP, services: Services, groups: list[str]) -> None:
    """Register the modules of these groups once each, and hide the other groups' tools."""
    done: list[Registrar] = []
    for group in groups:
        for registrar in TOOLSETS[group]:
            if registrar not in done:
                registrar(mcp, services)
                done.append(registrar)
    hidden = set(TOOLSETS) - set(groups)
    if hidden:
        mcp.disable(tags=hidden)


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
