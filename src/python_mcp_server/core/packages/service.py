"""PackageService: install, uninstall and list packages of the environment a call targets.

A call names a session (its kernel's environment), an environment, or neither (the
active session's environment, else the default one). After a change, running kernels of
that environment refresh their import caches so new packages import without a restart.
"""

from __future__ import annotations

import asyncio
import time

from python_mcp_server.core.observability.audit import audit_install
from python_mcp_server.core.packages.environments import EnvironmentManager, refresh_import_caches
from python_mcp_server.core.packages.requirements import PackageSpec, parse_names, parse_packages
from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.errors import InvalidInputError, ServerError
from python_mcp_server.models.packages import InstallResult, PackageList, UninstallResult


class PackageService:
    """The package tools' core."""

    def __init__(self, environments: EnvironmentManager, sessions: SessionManager) -> None:
        self.environments = environments
        self.sessions = sessions

    def target_name(self, session_id: str | None, venv_name: str | None) -> str:
        """The environment a call targets (see the module docstring)."""
        default = self.environments.default_name
        if venv_name is not None:
            name = self.environments.resolve(venv_name)
            if session_id is not None:
                runs = self.sessions.get(session_id).venv_name or default
                if runs != name:
                    raise InvalidInputError(
                        f"session {session_id!r} runs environment {runs!r}, not {name!r}; "
                        "give session_id or venv_name"
                    )
            return name
        if session_id is not None:
            return self.sessions.get(session_id).venv_name or default
        active = self.sessions.active_session_id
        if active in self.sessions:
            return self.sessions.get(active).venv_name or default
        return default

    async def install(
        self,
        packages: str | list[str],
        *,
        session_id: str | None = None,
        venv_name: str | None = None,
        upgrade: bool = False,
    ) -> InstallResult:
        specs = parse_packages(packages)
        return await self.install_specs(
            self.target_name(session_id, venv_name), specs, upgrade=upgrade
        )

    async def install_specs(
        self, name: str, specs: list[PackageSpec], *, upgrade: bool = False
    ) -> InstallResult:
        """Install validated specifiers into environment ``name`` and refresh its kernels."""
        target = self.environments.target(name)
        started = time.perf_counter()
        texts = [spec.text for spec in specs]
        try:
            result = await self.environments.installer.install(target, specs, upgrade=upgrade)
        except ServerError as exc:
            audit_install(
                packages=texts,
                venv_name=name,
                status="error",
                error_code=exc.code.value,
                duration=time.perf_counter() - started,
            )
            raise
        audit_install(
            packages=texts,
            venv_name=name,
            status="ok",
            duration=time.perf_counter() - started,
            installer=result.installer,
        )
        if result.changes:
            self.environments.changed(name)
            await self.sessions.factory.environment_changed()
            result.sessions_refreshed = await refresh_import_caches(
                self.environments.live_sessions(name)
            )
        return result

    async def uninstall(
        self,
        packages: str | list[str],
        *,
        session_id: str | None = None,
        venv_name: str | None = None,
    ) -> UninstallResult:
        specs = parse_names(packages)
        name = self.target_name(session_id, venv_name)
        result = await self.environments.installer.uninstall(self.environments.target(name), specs)
        if any(p.status == "removed" for p in result.packages):
            self.environments.changed(name)
            await self.sessions.factory.environment_changed()
            await refresh_import_caches(self.environments.live_sessions(name))
        return result

    async def list_packages(
        self, *, session_id: str | None = None, venv_name: str | None = None
    ) -> PackageList:
        name = self.target_name(session_id, venv_name)
        target = self.environments.target(name)
        packages, own = await asyncio.to_thread(self.environments.installer.packages, target)
        return PackageList(
            venv_name=name, packages=packages, total=len(packages), environment_total=own
        )
