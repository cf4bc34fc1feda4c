"""PackageService: install, uninstall and list packages of the target a call names.

A call naming a session works on that session's own package folder (seen by its kernel
only, removed with the session), with its environment's packages beneath. A call naming
an environment, or nothing (the active session's environment, else the default one),
works on the shared environment. After a change, the running kernels that see it
refresh their import caches so new packages import without a restart.
"""

from __future__ import annotations

from python_mcp_server.core.observability.audit import audited_install
from python_mcp_server.core.packages.environments import EnvironmentManager
from python_mcp_server.core.packages.import_refresh import refresh_import_caches
from python_mcp_server.core.packages.installer import EnvTarget
from python_mcp_server.core.packages.requirements import PackageSpec, parse_names, parse_packages
from python_mcp_server.core.sessions.manager import SessionManager
from python_mcp_server.core.sessions.owners import SessionRef, SessionSpec, as_ref, split_key
from python_mcp_server.core.sessions.session import KernelSession
from python_mcp_server.errors import InvalidInputError
from python_mcp_server.models.packages import InstallResult, PackageList, UninstallResult


class PackageService:
    """The package tools' core."""

    def __init__(self, environments: EnvironmentManager, sessions: SessionManager) -> None:
        self.environments = environments
        self.sessions = sessions

    def target_name(self, session_id: SessionSpec, venv_name: str | None) -> str:
        """The environment a call targets (see the module docstring)."""
        default = self.environments.default_name
        ref = as_ref(session_id)
        if venv_name is not None:
            name = self.environments.resolve(venv_name)
            if ref.session_id is not None:
                runs = self.sessions.get(ref).venv_name or default
                if runs != name:
                    raise InvalidInputError(
                        f"session {ref.session_id!r} runs environment {runs!r}, not {name!r}; "
                        "give session_id or venv_name"
                    )
            return name
        if ref.session_id is not None:
            return self.sessions.get(ref).venv_name or default
        active = SessionRef(ref.owner, self.sessions.active_id(ref.owner))
        if active in self.sessions:
            return self.sessions.get(active).venv_name or default
        return default

    async def install(
        self,
        packages: str | list[str],
        *,
        session_id: SessionSpec = None,
        venv_name: str | None = None,
        upgrade: bool = False,
    ) -> InstallResult:
        specs = parse_packages(packages)
        name = self.target_name(session_id, venv_name)
        return await self.install_specs(name, specs, upgrade=upgrade, session_id=session_id)

    def target(self, name: str, session_id: SessionSpec) -> EnvTarget:
        """The session's package folder when the session has one, else the environment.

        A session's folder is named by its key (owner and id), as its kernel sees it.
        """
        folder = None
        key = ""
        packages = self.sessions.factory.packages
        if as_ref(session_id).session_id is not None and packages is not None:
            key = self.sessions.get(session_id).key
            folder = packages.for_session(key)
        if folder is None:
            return self.environments.target(name)
        return self.environments.session_target(name, key, folder.site)

    async def _environment_changed(self, name: str) -> None:
        """Templates holding the environment's old imports end; so do the pool's kernels
        when it is the default environment's."""
        await self.sessions.factory.environment_changed()
        if name == self.environments.default_name:
            await self.sessions.pool.renew()

    def _refreshed(self, target: EnvTarget) -> list[KernelSession]:
        if target.session_id is not None:
            return [s for s in self.sessions.all() if s.key == target.session_id]
        return self.environments.live_sessions(target.name)

    async def install_specs(
        self,
        name: str,
        specs: list[PackageSpec],
        *,
        upgrade: bool = False,
        session_id: SessionSpec = None,
    ) -> InstallResult:
        """Install validated specifiers into environment ``name`` (or the session's own
        package folder) and refresh the kernels that see it."""
        target = self.target(name, session_id)
        texts = [spec.text for spec in specs]
        sink = self.environments.audit_sink
        with audited_install(packages=texts, venv_name=name, sink=sink) as audit:
            result = await self.environments.installer.install(target, specs, upgrade=upgrade)
            audit.installer = result.installer
        if result.changes:
            if target.session_id is None:
                self.environments.changed(name)
                await self._environment_changed(name)
            result.sessions_refreshed = await refresh_import_caches(self._refreshed(target))
        if result.session_id is not None:
            result.session_id = split_key(result.session_id)[1]  # the id its owner knows
        return result

    async def uninstall(
        self,
        packages: str | list[str],
        *,
        session_id: SessionSpec = None,
        venv_name: str | None = None,
    ) -> UninstallResult:
        specs = parse_names(packages)
        name = self.target_name(session_id, venv_name)
        target = self.target(name, session_id)
        result = await self.environments.installer.uninstall(target, specs)
        if any(p.status == "removed" for p in result.packages):
            if target.session_id is None:
                self.environments.changed(name)
                await self._environment_changed(name)
            await refresh_import_caches(self._refreshed(target))
        if result.session_id is not None:
            result.session_id = split_key(result.session_id)[1]  # the id its owner knows
        return result

    async def list_packages(
        self, *, session_id: SessionSpec = None, venv_name: str | None = None
    ) -> PackageList:
        name = self.target_name(session_id, venv_name)
        target = self.target(name, session_id)
        packages, own = await self.environments.installer.packages(target)
        return PackageList(
            venv_name=name,
            session_id=None if target.session_id is None else split_key(target.session_id)[1],
            packages=packages,
            total=len(packages),
            environment_total=own,
        )
