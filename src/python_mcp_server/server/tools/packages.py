"""Package tools: install_dependencies, uninstall_packages, list_packages."""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.models.packages import InstallResult, PackageList, UninstallResult
from python_mcp_server.server.principals import session_ref
from python_mcp_server.server.services import Services
from python_mcp_server.server.tasks import task_tool
from python_mcp_server.server.tools.annotations import READ_ONLY, REPLACES, SETS

TAGS = {"packages"}

PackagesArg = Annotated[
    list[str] | str,
    Field(
        description="Requirement specifiers (PEP 508: name, extras, versions, markers), as a "
        "list or one comma/space separated string, e.g. 'pandas>=2 requests[socks]'. "
        "Options, paths and URLs are refused."
    ),
]
NamesArg = Annotated[
    list[str] | str,
    Field(
        description="Distribution names to remove, as a list or one comma/space separated "
        "string, e.g. 'requests six'. Names only: versions and extras are refused."
    ),
]


def _session_arg(verb: str) -> object:
    return Field(description=f"{verb} the environment of this session (default: the active one).")


def _venv_arg(verb: str) -> object:
    return Field(description=f"{verb} this environment by name instead of a session's.")


def register(mcp: FastMCP, services: Services) -> None:
    service = services.packages

    @task_tool(mcp, budget=services.result_budget, tags=TAGS, annotations=SETS)
    async def install_dependencies(
        packages: PackagesArg,
        session_id: Annotated[str | None, _session_arg("Install into")] = None,
        venv_name: Annotated[str | None, _venv_arg("Install into")] = None,
        upgrade: Annotated[
            bool, Field(description="Upgrade packages that are already installed.")
        ] = False,
    ) -> InstallResult:
        """Install packages into an environment (uv; pip when uv is missing).

        They import in running sessions of that environment at once, without a restart.
        Returns each package's outcome and version, every changed distribution and the time
        taken. A package that cannot be installed fails the call with
        PACKAGE_INSTALLATION_ERROR naming it; then nothing is installed.
        """
        return await service.install(
            packages, session_id=session_ref(session_id), venv_name=venv_name, upgrade=upgrade
        )

    @task_tool(mcp, budget=services.result_budget, tags=TAGS, annotations=REPLACES)
    async def uninstall_packages(
        packages: NamesArg,
        session_id: Annotated[str | None, _session_arg("Remove from")] = None,
        venv_name: Annotated[str | None, _venv_arg("Remove from")] = None,
    ) -> UninstallResult:
        """Remove packages (names only) from an environment; the server's own are kept."""
        return await service.uninstall(
            packages, session_id=session_ref(session_id), venv_name=venv_name
        )

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def list_packages(
        session_id: Annotated[str | None, _session_arg("List")] = None,
        venv_name: Annotated[str | None, _venv_arg("List")] = None,
    ) -> PackageList:
        """Every package kernels of an environment can import, with its version and whether
        it is installed in the environment or seen from the server's environment."""
        return await service.list_packages(session_id=session_ref(session_id), venv_name=venv_name)
