"""EnvironmentManager: the virtual environments kernels run in, under ``MCP_VENVS_DIR``.

Every managed environment is a venv of the server's interpreter (made by ``uv venv``, or
``python -m venv`` without uv) holding a link file: a ``.pth`` whose line runs
``site.addsitedir(<server site-packages>)``. Its kernels therefore import ipykernel and the
server's packages without installing them, while anything installed into the venv lands in
its own site-packages, which comes first on ``sys.path`` and so takes precedence. Installs
never write to the server's environment. The *default* environment is created at start,
before any kernel, and is what sessions without ``venv_name`` run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from python_mcp_server.core.observability.audit import AuditSink, audited_install
from python_mcp_server.core.packages import venv_files
from python_mcp_server.core.packages.import_refresh import refresh_import_caches
from python_mcp_server.core.packages.installer import EnvTarget, Installer
from python_mcp_server.core.packages.installer_env import installer_env
from python_mcp_server.core.packages.package_scan import scan_distributions
from python_mcp_server.core.packages.preinstall import Preinstall
from python_mcp_server.core.packages.requirements import PackageSpec
from python_mcp_server.core.packages.venv_files import has_entry, is_regular_file
from python_mcp_server.core.packages.venv_records import (
    LINK_FILE,
    METADATA_FILE,
    link_file_text,
    read_link_file,
    read_metadata,
    recorded_time,
    write_link_file,
    write_metadata,
)
from python_mcp_server.core.packages.venv_sys_path import probe_sys_path
from python_mcp_server.core.workspace.dirfd import DirectoryRoot
from python_mcp_server.errors import (
    ConfirmationRequiredError,
    InvalidInputError,
    PackageInstallationError,
    ServerError,
    VenvExistsError,
    VenvInUseError,
    VenvNotFoundError,
)
from python_mcp_server.infra.subprocess import CommandError, run_command
from python_mcp_server.models.environments import PreinstallStatus, VenvInfo
from python_mcp_server.models.packages import InstallResult

if TYPE_CHECKING:
    from python_mcp_server.core.sessions.manager import SessionManager
    from python_mcp_server.core.sessions.session import KernelSession

logger = logging.getLogger(__name__)

VENV_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Longest description list_venvs returns (what set_venv_description accepts).
DESCRIPTION_LIMIT = 500
CREATE_TIMEOUT = 120.0


def validate_venv_name(name: str) -> str:
    if not isinstance(name, str) or not VENV_NAME_PATTERN.match(name):
        raise InvalidInputError(
            f"venv_name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class EnvironmentsConfig:
    """Where environments live and what they are made from."""

    venvs_path: Path
    default_name: str
    base_python: str = sys.executable
    server_dirs: tuple[Path, ...] = ()
    uv: str | None = None
    preinstalled: str = ""
    #: The server's Python folders (its prefixes and site-packages): where an environment's
    #: ``sys.path`` may lead besides the environment itself.
    trusted_paths: tuple[Path, ...] = ()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class EnvironmentManager:
    """Creates, lists, describes and deletes environments; resolves their interpreters."""

    def __init__(self, config: EnvironmentsConfig, installer: Installer) -> None:
        self.config = config
        self.installer = installer
        #: Set by build_services: who runs which environment (VENV_IN_USE, refreshes).
        self.sessions: SessionManager | None = None
        #: Set by build_services: the database's copy of the audit records.
        self.audit_sink: AuditSink | None = None
        self._preinstall = Preinstall()
        self.default_created_seconds: float | None = None
        self._sys_paths: dict[str, list[str]] = {}

    @property
    def default_name(self) -> str:
        return self.config.default_name

    # --- locating ------------------------------------------------------------------------
    def root(self, name: str) -> Path:
        return self.config.venvs_path / validate_venv_name(name)

    def resolve(self, name: str | None) -> str:
        return self.default_name if name is None else validate_venv_name(name)

    def exists(self, name: str) -> bool:
        """Whether the environment is there (its pyvenv.cfg is looked at, never followed)."""
        root = self.root(name)
        return has_entry(self._files(), (name, "pyvenv.cfg")) and (root / "bin" / "python").exists()

    def python_version(self, name: str) -> str:
        """The version its pyvenv.cfg records, read as untrusted data (``venv_files``)."""
        return venv_files.python_version(self._files(), validate_venv_name(name))

    def _require(self, name: str | None) -> str:
        resolved = self.resolve(name)
        if not self.exists(resolved):
            raise VenvNotFoundError(
                f"no environment {resolved!r}; create_venv makes one, list_venvs shows what exists"
            )
        return resolved

    def python_for(self, name: str | None) -> str:
        """The interpreter kernels of an environment run (None: the default one)."""
        return str(self.root(self._require(name)) / "bin" / "python")

    def target(self, name: str | None) -> EnvTarget:
        """What the installer needs to change an existing environment."""
        resolved = self._require(name)
        root = self.root(resolved)
        version = self.python_version(resolved).split(".")  # digits and dots, or "unknown"
        short = ".".join(version[:2]) if len(version) >= 2 else "{}.{}".format(*sys.version_info)
        site_parts = (resolved, "lib", f"python{short}", "site-packages")
        linked = is_regular_file(self._files(), (*site_parts, LINK_FILE))
        return EnvTarget(
            name=resolved,
            root=root,
            python=root / "bin" / "python",
            site_packages=root / "lib" / f"python{short}" / "site-packages",
            server_dirs=self.config.server_dirs if linked else (),
        )

    def session_target(self, name: str, session_id: str, site: Path) -> EnvTarget:
        """What the installer needs to install into one session's package folder."""
        base = self.target(name)
        return EnvTarget(
            name=base.name,
            root=base.root,
            python=base.python,
            site_packages=base.site_packages,
            server_dirs=base.server_dirs,
            session_id=session_id,
            session_site=site,
        )

    def sessions_using(self, name: str) -> list[str]:
        return [s.session_id for s in self.live_sessions(name)]

    async def kernel_sys_path(self, name: str) -> list[str]:
        """The ``sys.path`` a kernel of the environment starts with (asked once, cached
        until the environment changes; read as untrusted data: ``venv_sys_path.py``)."""
        cached = self._sys_paths.get(name)
        if cached is None:
            root = self.root(self._require(name))
            python = self.python_for(name)
            trusted = self.config.trusted_paths
            cached = await probe_sys_path(
                self.installer, name, python, root, trusted, timeout=CREATE_TIMEOUT
            )
            self._sys_paths[name] = cached
        return cached

    def changed(self, name: str) -> None:
        """Forget what was cached about an environment whose contents changed."""
        self._sys_paths.pop(name, None)

    def live_sessions(self, name: str) -> list[KernelSession]:
        if self.sessions is None:
            return []
        return [s for s in self.sessions.all() if (s.venv_name or self.default_name) == name]

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Make sure the default environment exists (before any kernel), then preinstall."""
        self.config.venvs_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        await asyncio.to_thread(self._refresh_links)
        name = self.default_name
        if not self._usable(name):
            if self.root(name).exists():
                logger.warning("default environment is broken or for another Python; remaking")
                await asyncio.to_thread(shutil.rmtree, self.root(name), True)
            started = time.perf_counter()
            async with self.installer.lock_for(name):
                await self._make(name, "the default environment")
            self.default_created_seconds = time.perf_counter() - started
            logger.info("created the default environment in %.2f s", self.default_created_seconds)
        self._preinstall.start(
            self.config.preinstalled, self._install_preinstalled, self._preinstalled
        )

    async def aclose(self) -> None:
        await self._preinstall.aclose()

    def _usable(self, name: str) -> bool:
        if not self.exists(name):
            return False
        version = self.python_version(name).split(".")[:2]
        return version == [str(v) for v in sys.version_info[:2]]

    def _refresh_links(self) -> None:
        """Point every managed environment at the server's current site-packages."""
        if not self.config.venvs_path.is_dir():
            return
        text = link_file_text(self.config.server_dirs)
        for root in self.config.venvs_path.iterdir():
            if not VENV_NAME_PATTERN.match(root.name):
                continue
            if not is_regular_file(self._files(), (root.name, METADATA_FILE)):
                continue
            if not self._usable(root.name):
                continue
            target = self.target(root.name)
            parts = target.site_packages.relative_to(self.config.venvs_path).parts
            with contextlib.suppress(OSError, ServerError):
                if read_link_file(self._files(), parts, root.name) != text.encode():
                    self._write_link_file(target, text)

    # --- create / delete / describe ----------------------------------------------------
    async def create(
        self, name: str, *, description: str = "", packages: Sequence[PackageSpec] = ()
    ) -> InstallResult | None:
        """Create an environment (and install ``packages`` into it, or create nothing)."""
        validate_venv_name(name)
        async with self.installer.lock_for(name):
            if self.root(name).exists():
                raise VenvExistsError(f"environment {name!r} already exists")
            self.changed(name)
            await self._make(name, description)
            if not packages:
                return None
            try:
                return await self._install_audited(name, packages)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, self.root(name), True)
                raise

    async def _install_audited(self, name: str, packages: Sequence[PackageSpec]) -> InstallResult:
        """Install into environment ``name`` (its lock held) with one audit line, whatever
        the outcome: create_venv's packages and the preinstall are installs like any other."""
        texts = [spec.text for spec in packages]
        with audited_install(packages=texts, venv_name=name, sink=self.audit_sink) as audit:
            result = await self.installer.install_locked(self.target(name), packages)
            audit.installer = result.installer
        return result

    async def _make(self, name: str, description: str) -> None:
        root = self.root(name)
        root.parent.mkdir(parents=True, exist_ok=True)
        if self.config.uv:
            argv = [self.config.uv, "venv", "--no-config", "--no-project", "--quiet",
                    "--python", self.config.base_python, str(root)]  # fmt: skip
        else:
            argv = [self.config.base_python, "-m", "venv", "--without-pip", str(root)]
        try:
            result = await run_command(
                argv, timeout=CREATE_TIMEOUT, env=installer_env(), cwd=self.config.venvs_path
            )
        except CommandError as exc:
            await asyncio.to_thread(shutil.rmtree, root, True)
            raise PackageInstallationError(
                f"could not create environment {name!r}: {exc.message}"
            ) from exc
        if not result.ok or not (root / "bin" / "python").exists():
            await asyncio.to_thread(shutil.rmtree, root, True)
            reason = self.installer.hide_paths((result.stderr or result.stdout).strip())
            raise PackageInstallationError(f"could not create environment {name!r}: {reason}")
        target = self.target(name)
        self._write_link_file(target, link_file_text(self.config.server_dirs))
        write_metadata(
            self._files(),
            name,
            {
                "name": name,
                "description": description,
                "created_at": _now().isoformat(),
                "python_version": self.python_version(name),
                "tool": "uv" if self.config.uv else "venv",
            },
        )

    async def delete(self, name: str, *, confirm: bool = False) -> bool:
        """Delete an environment. The default one needs ``confirm`` and is recreated empty.

        Returns True when the default environment was reset.
        """
        name = self._require(name)
        is_default = name == self.default_name
        if is_default and not confirm:
            raise ConfirmationRequiredError(
                f"{name!r} is the default environment: deleting it removes every package "
                "installed into it (it is recreated empty at once); call again with "
                "confirm=true"
            )
        users = self.sessions_using(name)
        if users:
            raise VenvInUseError(
                f"environment {name!r} is used by session(s) {', '.join(users)}; delete them first"
            )
        async with self.installer.lock_for(name):
            self.changed(name)
            await asyncio.to_thread(shutil.rmtree, self.root(name))
            if is_default:
                await self._make(name, "the default environment")
        return is_default

    def set_description(self, name: str, description: str) -> None:
        name = self._require(name)
        data = read_metadata(self._files(), name)
        data["description"] = description
        write_metadata(self._files(), name, data)

    def _files(self) -> DirectoryRoot:
        """The environments folder, opened through descriptors: kernels can write into an
        environment, so a link they plant there is never followed."""
        return DirectoryRoot(self.config.venvs_path)

    def _write_link_file(self, target: EnvTarget, text: str) -> None:
        parts = target.site_packages.relative_to(self.config.venvs_path).parts
        write_link_file(self._files(), parts, target.name, text)

    # --- listing -------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.config.venvs_path.is_dir():
            return []
        found = [
            p.name
            for p in self.config.venvs_path.iterdir()
            if VENV_NAME_PATTERN.match(p.name)
            and p.is_dir()
            and not p.is_symlink()
            and has_entry(self._files(), (p.name, "pyvenv.cfg"))
        ]
        return sorted(found, key=lambda n: (n != self.default_name, n.lower()))

    def info(self, name: str) -> VenvInfo:
        """One environment's facts (reads the disk: call in a thread).

        Its own files are read as untrusted data (``venv_files``: no link followed, sizes
        capped, a FIFO never opened); the server's site-packages are the server's own."""
        target = self.target(name)
        files = self._files()
        site_parts = target.site_packages.relative_to(self.config.venvs_path).parts
        own = venv_files.scan(files, site_parts)
        server = scan_distributions(target.server_dirs) if target.server_dirs else {}
        data = read_metadata(self._files(), validate_venv_name(name))
        return VenvInfo(
            name=name,
            description=str(data.get("description", ""))[:DESCRIPTION_LIMIT],
            is_default=name == self.default_name,
            python_version=self.python_version(name),
            package_count=len(own),
            server_package_count=len(set(server) - set(own)),
            size_bytes=venv_files.tree_size(files, name),
            created_at=recorded_time(data.get("created_at")),
            sessions=self.sessions_using(name),
            preinstall=self.preinstall if name == self.default_name else None,
        )

    async def list_all(self) -> list[VenvInfo]:
        names = self.names()
        return list(await asyncio.gather(*(asyncio.to_thread(self.info, n) for n in names)))

    # --- preinstall ----------------------------------------------------------------------
    @property
    def preinstall(self) -> PreinstallStatus:
        """The background preinstall's progress (``MCP_PREINSTALLED_PACKAGES``)."""
        return self._preinstall.status

    async def wait_preinstalled(self) -> PreinstallStatus:
        """Wait for the background preinstall (if any) to finish; return its status."""
        return await self._preinstall.wait()

    async def _install_preinstalled(
        self, specs: list[PackageSpec], running: Callable[[], None]
    ) -> InstallResult:
        name = self.default_name
        async with self.installer.lock_for(name):
            running()
            return await self._install_audited(name, specs)

    async def _preinstalled(self) -> None:
        self.changed(self.default_name)
        await refresh_import_caches(self.live_sessions(self.default_name))
