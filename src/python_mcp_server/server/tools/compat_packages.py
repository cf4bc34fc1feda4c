"""Compat package and environment tools, both argument styles (``venvName``/``venv_name``).

Node executors: install_packages, uninstall_packages, list_packages, list_venvs,
create_venv, delete_venv, set_venv_description. Chinese-language executor:
install_python_package, list_installed_packages. Results are the native models (a
superset of what the Node executors printed) or the Chinese executor's exact shapes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.core.compat import pick
from python_mcp_server.core.packages.requirements import parse_packages
from python_mcp_server.errors import InvalidInputError, PackageInstallationError
from python_mcp_server.models.compat import (
    InstalledPackage,
    InstalledPackageList,
    InstallPythonPackageResult,
)
from python_mcp_server.models.environments import VenvAction, VenvList
from python_mcp_server.models.packages import InstallResult, PackageList, UninstallResult
from python_mcp_server.server.principals import session_ref
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.compat import compat_tool

PackagesArg = Annotated[
    list[str] | str,
    Field(description="Packages: a list, or one comma (or space) separated string."),
]
VenvCamel = Annotated[str | None, Field(description="Environment name (default: the default).")]
VenvSnake = Annotated[str | None, Field(description="Same as venvName (native style).")]
SessionArg = Annotated[str | None, Field(description="Native style: the session's environment.")]


def _venv(venvName: str | None, venv_name: str | None) -> str | None:
    return pick("venvName", venvName, venv_name)


def _required_venv(venvName: str | None, venv_name: str | None) -> str:
    name = _venv(venvName, venv_name)
    if name is None:
        raise InvalidInputError("venvName is required")
    return name


def register(mcp: FastMCP, services: Services) -> None:
    service = services.packages
    environments = services.environments

    @compat_tool(mcp)
    async def install_packages(
        packages: PackagesArg,
        venvName: VenvCamel = None,
    ) -> InstallResult:
        """Install packages (MCP Python Executor compatible); uv, pip when uv is missing.

        Failure is a tool error PACKAGE_INSTALLATION_ERROR naming the package.
        """
        return await service.install(packages, venv_name=venvName)

    @compat_tool(mcp)
    async def uninstall_packages(
        packages: PackagesArg,
        venvName: VenvCamel = None,
        venv_name: VenvSnake = None,
        session_id: SessionArg = None,
    ) -> UninstallResult:
        """Uninstall packages from an environment (both argument styles)."""
        name = _venv(venvName, venv_name)
        return await service.uninstall(packages, session_id=session_ref(session_id), venv_name=name)

    @compat_tool(mcp)
    async def list_packages(
        venvName: VenvCamel = None, venv_name: VenvSnake = None, session_id: SessionArg = None
    ) -> PackageList:
        """Installed packages of an environment, with versions (both argument styles)."""
        name = _venv(venvName, venv_name)
        return await service.list_packages(session_id=session_ref(session_id), venv_name=name)

    @compat_tool(mcp)
    async def list_venvs() -> VenvList:
        """Every virtual environment with its description, Python version and packages."""
        venvs = await environments.list_all()
        return VenvList(venvs=venvs, total=len(venvs), default_venv=environments.default_name)

    @compat_tool(mcp)
    async def create_venv(
        venvName: VenvCamel = None,
        description: Annotated[
            str, Field(max_length=500, description="What the environment is for.")
        ] = "",
        venv_name: VenvSnake = None,
        packages: Annotated[
            list[str] | str | None, Field(description="Packages to install into it.")
        ] = None,
    ) -> VenvAction:
        """Create a virtual environment (both argument styles)."""
        name = _required_venv(venvName, venv_name)
        specs = parse_packages(packages) if packages else []
        started = time.perf_counter()
        install = await environments.create(name, description=description, packages=specs)
        return VenvAction(
            venv_name=name,
            action="created",
            message=f"environment {name!r} is ready",
            venv=await asyncio.to_thread(environments.info, name),
            duration_seconds=round(time.perf_counter() - started, 3),
            install=install,
        )

    @compat_tool(mcp)
    async def delete_venv(
        venvName: VenvCamel = None,
        confirm: Annotated[
            bool, Field(description="Required for the default environment (it is reset).")
        ] = False,
        venv_name: VenvSnake = None,
    ) -> VenvAction:
        """Delete an environment; the default one needs confirm=true (it is then reset)."""
        name = _required_venv(venvName, venv_name)
        started = time.perf_counter()
        reset = await environments.delete(name, confirm=confirm)
        return VenvAction(
            venv_name=name,
            action="reset" if reset else "deleted",
            message=f"environment {name!r} was {'reset' if reset else 'deleted'}",
            duration_seconds=round(time.perf_counter() - started, 3),
        )

    @compat_tool(mcp)
    async def set_venv_description(
        description: Annotated[
            str, Field(max_length=500, description="The environment's new description.")
        ],
        venvName: VenvCamel = None,
        venv_name: VenvSnake = None,
    ) -> VenvAction:
        """Change an environment's description (both argument styles)."""
        name = _required_venv(venvName, venv_name)
        environments.set_description(name, description)
        return VenvAction(
            venv_name=name,
            action="described",
            message=f"description of {name!r} updated",
            venv=await asyncio.to_thread(environments.info, name),
        )

    @compat_tool(mcp)
    async def install_python_package(
        package_name: Annotated[str, Field(description="One requirement, e.g. numpy==2.1.")],
    ) -> InstallPythonPackageResult:
        """Install one package (Python executor compatible); failure is success=false."""
        specs = parse_packages([package_name])
        if len(specs) != 1:
            raise InvalidInputError("package_name names exactly one package")
        venv = service.target_name(None, None)
        try:
            result = await service.install_specs(venv, specs)
        except PackageInstallationError as exc:
            return InstallPythonPackageResult(
                package_name=package_name,
                success=False,
                message=exc.message,
                installed_at=datetime.now(timezone.utc),
                venv_name=venv,
                error_code="PACKAGE_INSTALLATION_ERROR",
            )
        outcome = result.packages[0] if result.packages else None
        return InstallPythonPackageResult(
            package_name=package_name,
            success=True,
            message=result.message,
            installed_at=datetime.now(timezone.utc),
            version=outcome.version if outcome else None,
            venv_name=venv,
        )

    @compat_tool(mcp)
    async def list_installed_packages() -> InstalledPackageList:
        """Packages of the active session's environment (Python executor compatible)."""
        listing = await service.list_packages()
        return InstalledPackageList(
            packages=[InstalledPackage(name=p.name, version=p.version) for p in listing.packages],
            total_count=listing.total,
            retrieved_at=datetime.now(timezone.utc),
            venv_name=listing.venv_name,
        )
