"""Environment tools: create_venv, list_venvs, delete_venv, set_venv_description."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.core.packages.requirements import parse_packages
from python_mcp_server.models.environments import VenvAction, VenvList
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.annotations import ADDS, READ_ONLY, REPLACES, SETS

TAGS = {"environments"}

VenvNameArg = Annotated[
    str, Field(description="Environment name: 1-64 letters, digits, '.', '_' or '-'.")
]
DescriptionArg = Annotated[str, Field(max_length=500, description="What it is for.")]


def register(mcp: FastMCP, services: Services) -> None:
    environments = services.environments

    @mcp.tool(tags=TAGS, annotations=ADDS)
    async def create_venv(
        venv_name: VenvNameArg,
        description: DescriptionArg = "",
        packages: Annotated[
            list[str] | str | None,
            Field(description="Packages to install into it (same rules as install_dependencies)."),
        ] = None,
    ) -> VenvAction:
        """Create a virtual environment for sessions (create_session venv_name=...).

        It runs the server's Python and sees the server's packages (ipykernel included), so
        it is ready in a moment; packages installed into it take precedence and stay in it.
        """
        specs = parse_packages(packages) if packages else []
        started = time.perf_counter()
        install = await environments.create(venv_name, description=description, packages=specs)
        info = await asyncio.to_thread(environments.info, venv_name)
        return VenvAction(
            venv_name=venv_name,
            action="created",
            message=f"environment {venv_name!r} is ready"
            + (f"; {install.message}" if install else ""),
            venv=info,
            duration_seconds=round(time.perf_counter() - started, 3),
            install=install,
        )

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def list_venvs() -> VenvList:
        """Every environment: description, Python version, package count, size, creation
        time, the sessions running it, and (default one) the preinstall progress."""
        venvs = await environments.list_all()
        return VenvList(venvs=venvs, total=len(venvs), default_venv=environments.default_name)

    @mcp.tool(tags=TAGS, annotations=REPLACES)
    async def delete_venv(
        venv_name: VenvNameArg,
        confirm: Annotated[
            bool, Field(description="Required for the default environment (it is reset).")
        ] = False,
    ) -> VenvAction:
        """Delete an environment no session uses. The default one needs confirm=true and is
        recreated empty at once (a reset)."""
        started = time.perf_counter()
        reset = await environments.delete(venv_name, confirm=confirm)
        return VenvAction(
            venv_name=venv_name,
            action="reset" if reset else "deleted",
            message=(
                f"the default environment {venv_name!r} was deleted and recreated empty"
                if reset
                else f"environment {venv_name!r} was deleted"
            ),
            duration_seconds=round(time.perf_counter() - started, 3),
        )

    @mcp.tool(tags=TAGS, annotations=SETS)
    async def set_venv_description(
        venv_name: VenvNameArg, description: DescriptionArg
    ) -> VenvAction:
        """Change an environment's description."""
        environments.set_description(venv_name, description)
        info = await asyncio.to_thread(environments.info, venv_name)
        return VenvAction(
            venv_name=venv_name,
            action="described",
            message=f"description of {venv_name!r} updated",
            venv=info,
        )
