"""Installer: uv (pip when uv is missing) installing validated specifiers into one venv,
or into one session's package folder (``--target``).

Installs into one target run one at a time (a lock per target); different targets install
in parallel. Package sources come only from the settings (index, extra index,
find-links): the installer runs with ``--no-config`` / ``PIP_CONFIG_FILE`` pointing
nowhere. Every installer run, and every reading of what a target holds, goes through the
``SandboxedRunner``: it may run the environment's interpreter and reads folders a kernel
could have written, so it runs confined like a kernel, with a scrubbed environment, the
target the only writable folder, and the network only for installs. Each call reports
per-package outcomes from the target's metadata before and after, so no installer output
is parsed for facts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from python_mcp_server.core.packages.installer_env import INSTALLER_ENV_FIXED
from python_mcp_server.core.packages.package_scan import (
    SCAN_PROGRAM,
    SCAN_TIMEOUT,
    Distributions,
    Shared,
    checked_distributions,
    distribution_changes,
)
from python_mcp_server.core.packages.requirements import PackageSpec
from python_mcp_server.errors import PackageInstallationError
from python_mcp_server.infra.sandboxed_run import SandboxedRunner
from python_mcp_server.infra.subprocess import (
    CommandResult,
    CommandStartError,
    CommandTimeoutError,
)
from python_mcp_server.models.packages import (
    InstallResult,
    PackageChange,
    PackageInfo,
    PackageOutcome,
    UninstallOutcome,
    UninstallResult,
)

MAX_REASON_CHARS = 1500
_NOISE = re.compile(
    r"^(Using Python .* environment at|Looking in (indexes|links)|WARNING: Location|"
    r"Resolved \d|Prepared \d|Audited \d|Checked \d)"
)


@dataclass(frozen=True)
class EnvTarget:
    """Where an install goes: an environment, or one session's package folder."""

    name: str
    root: Path
    python: Path
    site_packages: Path
    #: The server's site-packages folders the environment sees through its link file.
    server_dirs: tuple[Path, ...] = ()
    #: Set for a session's own installs: its package folder's install target.
    session_id: str | None = None
    session_site: Path | None = None

    @property
    def lock_key(self) -> str:
        return self.name if self.session_id is None else f"session:{self.session_id}"

    @property
    def own_dir(self) -> Path:
        """The folder installs change."""
        return self.session_site if self.session_site is not None else self.site_packages

    @property
    def own_location(self) -> str:
        return "environment" if self.session_site is None else "session"

    @property
    def writable(self) -> Path:
        """The folder an installer run may change (and runs in)."""
        return self.session_site if self.session_site is not None else self.root

    def shared_dirs(self) -> list[tuple[Path, str]]:
        """Folders kernels also import from, below the own one, with their location."""
        dirs = [(d, "server") for d in self.server_dirs]
        if self.session_site is not None:
            dirs.insert(0, (self.site_packages, "environment"))
        return dirs


@dataclass(frozen=True)
class InstallerConfig:
    """Installer settings."""

    timeout: float
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    #: Path of the uv binary; None installs with pip.
    uv: str | None = None
    #: (absolute path, label) pairs replaced in messages so no server path leaks.
    hidden_paths: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: The installer's own cache, shared by installer runs only (never seen by kernels).
    cache_dir: Path | None = None
    #: The interpreter that reads targets' metadata in the sandbox (the server's own).
    scan_python: str = sys.executable

    def local_folders(self) -> tuple[Path, ...]:
        """Package folders on this machine the settings name (find-links, file: indexes)."""
        found: list[Path] = []
        for item in (*self.find_links, self.index_url or "", *self.extra_index_urls):
            path = item[len("file://") :] if item.startswith("file://") else item
            if path.startswith("/") and os.path.isdir(path):
                found.append(Path(path))
        return tuple(found)


def find_uv() -> str | None:
    """The uv binary shipped by the ``uv`` wheel, else one on PATH, else None."""
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def split_setting(value: str | None) -> tuple[str, ...]:
    """A setting holding several URLs or folders, separated by spaces or commas."""
    return tuple(part for part in re.split(r"[\s,]+", value or "") if part)


def _satisfied(spec: PackageSpec, version: str | None) -> bool:
    if version is None or spec.requirement.extras:
        return False  # extras may need more than the package itself: let the installer decide
    try:
        return spec.requirement.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return False


class Installer:
    """Installs, uninstalls and lists packages of environments and session folders."""

    def __init__(self, config: InstallerConfig, runner: SandboxedRunner) -> None:
        self.config = config
        self.runner = runner
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def tool(self) -> str:
        return "uv" if self.config.uv else "pip"

    def lock_for(self, key: str) -> asyncio.Lock:
        """The lock serialising changes to one target (an environment's name, or
        ``EnvTarget.lock_key``)."""
        return self._locks.setdefault(key, asyncio.Lock())

    # --- reading a target ---------------------------------------------------------------
    async def scan(self, target: EnvTarget) -> tuple[Distributions, list[Shared]]:
        """What the target holds, and what each folder below it holds (with its location),
        read in the sandbox: the folders may hold files a kernel wrote."""
        shared = target.shared_dirs()
        folders = [target.own_dir, *(d for d, _ in shared)]
        result = await self._run(
            [self.config.scan_python, "-I", "-S", "-c", SCAN_PROGRAM, *map(str, folders)],
            target,
            "reading the installed packages",
            timeout=SCAN_TIMEOUT,
            install=False,
        )
        try:
            parsed = json.loads(result.stdout) if result.ok else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or len(parsed) != len(folders):
            raise PackageInstallationError(
                "could not read the installed packages: " + self._reason(result, target)
            )
        found = [checked_distributions(entries) for entries in parsed]
        return found[0], [(dists, loc) for dists, (_, loc) in zip(found[1:], shared, strict=True)]

    async def packages(self, target: EnvTarget) -> tuple[list[PackageInfo], int]:
        """Every distribution kernels of ``target`` see, and how many are its own."""
        own, shared = await self.scan(target)
        listed = [
            PackageInfo.model_validate({"name": n, "version": v, "location": target.own_location})
            for n, v in own.values()
        ]
        seen = set(own)
        for dists, location in shared:
            for key, (n, v) in dists.items():
                if key not in seen:
                    seen.add(key)
                    listed.append(
                        PackageInfo.model_validate({"name": n, "version": v, "location": location})
                    )
        listed.sort(key=lambda p: canonicalize_name(p.name))
        return listed, len(own)

    # --- install -----------------------------------------------------------------------
    async def install(
        self, target: EnvTarget, specs: Sequence[PackageSpec], *, upgrade: bool = False
    ) -> InstallResult:
        """Install ``specs`` into ``target``; PACKAGE_INSTALLATION_ERROR names what failed."""
        async with self.lock_for(target.lock_key):
            return await self.install_locked(target, specs, upgrade=upgrade)

    async def install_locked(
        self, target: EnvTarget, specs: Sequence[PackageSpec], *, upgrade: bool = False
    ) -> InstallResult:
        """``install`` for a caller that already holds ``lock_for(target.lock_key)``."""
        started = time.perf_counter()
        own, shared = await self.scan(target)

        def visible(name: str, own_now: Distributions) -> tuple[str | None, str | None]:
            if name in own_now:
                return own_now[name][1], target.own_location
            for dists, location in shared:
                if name in dists:
                    return dists[name][1], location
            return None, None

        outcomes: dict[int, PackageOutcome] = {}
        pending: list[tuple[int, PackageSpec]] = []
        for index, spec in enumerate(specs):
            version, location = visible(spec.name, own)
            if not spec.applies():
                outcomes[index] = self._outcome(spec, "skipped", version, None, location)
            elif not upgrade and _satisfied(spec, version):
                outcomes[index] = self._outcome(
                    spec, "already_satisfied", version, version, location
                )
            else:
                pending.append((index, spec))
        changes: list[PackageChange] = []
        if pending:
            await self._install(target, [spec for _, spec in pending], upgrade=upgrade)
            after, _ = await self.scan(target)
            changes = distribution_changes(own, after)
            for index, spec in pending:
                before, _ = visible(spec.name, own)
                now, location = visible(spec.name, after)
                status = (
                    "installed"
                    if before is None
                    else "updated"
                    if now != before
                    else "already_satisfied"
                )
                outcomes[index] = self._outcome(spec, status, now, before, location)
        ordered = [outcomes[i] for i in range(len(specs))]
        return InstallResult(
            venv_name=target.name,
            session_id=target.session_id,
            installer="uv" if pending and self.config.uv else "pip" if pending else "none",
            packages=ordered,
            changes=changes,
            duration_seconds=round(time.perf_counter() - started, 3),
            message=_install_message(ordered, changes),
        )

    @staticmethod
    def _outcome(
        spec: PackageSpec,
        status: str,
        version: str | None,
        previous: str | None,
        location: str | None,
    ) -> PackageOutcome:
        return PackageOutcome.model_validate(
            {
                "requirement": spec.text,
                "name": spec.name,
                "status": status,
                "version": version,
                "previous_version": previous if previous != version else None,
                "location": location,
            }
        )

    def _index_args(self) -> list[str]:
        args: list[str] = []
        if self.config.index_url:
            args += ["--index-url", self.config.index_url]
        for url in self.config.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.config.find_links:
            args += ["--find-links", link]
        return args

    def install_argv(self, target: EnvTarget, texts: Sequence[str], *, upgrade: bool) -> list[str]:
        """The installer command line for ``texts`` (validated specifiers only)."""
        upgrade_args = ["--upgrade"] if upgrade else []
        where = ["--target", str(target.session_site)] if target.session_site else []
        if self.config.uv:
            return [
                self.config.uv, "pip", "install", "--python", str(target.python), *where,
                "--no-config", "--color", "never", "--no-progress", "--compile-bytecode",
                *self._index_args(), *upgrade_args, "--", *texts,
            ]  # fmt: skip
        return [
            str(target.python), "-m", "pip", "install", "--no-input",
            "--disable-pip-version-check", "--progress-bar", "off", *where,
            *self._index_args(), *upgrade_args, "--", *texts,
        ]  # fmt: skip

    async def _install(
        self, target: EnvTarget, specs: Sequence[PackageSpec], *, upgrade: bool
    ) -> None:
        names = ", ".join(spec.name for spec in specs)
        argv = self.install_argv(target, [spec.text for spec in specs], upgrade=upgrade)
        result = await self._run(argv, target, f"installing {names}")
        if not result.ok:
            reason = self._reason(result, target)
            culprits = _culprits(specs, reason) or [spec.name for spec in specs]
            raise PackageInstallationError(
                f"could not install {', '.join(culprits)}: {reason} "
                "(nothing from this request was installed)"
            )

    async def _run(
        self,
        argv: list[str],
        target: EnvTarget,
        what: str,
        *,
        timeout: float | None = None,
        install: bool = True,
    ) -> CommandResult:
        """Run an installer (``install``: with network, the target writable) or a reading
        of the target (no network, nothing writable) through the sandboxed runner."""
        env = dict(INSTALLER_ENV_FIXED)
        writable: list[Path] = []
        if install:
            writable.append(target.writable)
            cache = self.config.cache_dir
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True, mode=0o700)
                writable.append(cache)
            env["UV_CACHE_DIR"] = str(cache) if cache is not None else "/tmp/uv-cache"
        readable = [target.root, *target.server_dirs, *self.config.local_folders()]
        if target.session_site is not None:
            readable.append(target.session_site)
        try:
            return await self.runner.run(
                argv,
                timeout=timeout if timeout is not None else self.config.timeout,
                readable=readable,
                writable=writable,
                network=install,
                env=env,
                cwd=target.writable if install else None,
            )
        except CommandTimeoutError as exc:
            raise PackageInstallationError(
                f"{what} did not finish within {exc.timeout:g} s (MCP_INSTALL_TIMEOUT) and "
                "was stopped; the environment may hold part of it"
            ) from exc
        except CommandStartError as exc:
            raise PackageInstallationError(f"{what}: {exc.message}") from exc

    # --- uninstall ---------------------------------------------------------------------
    async def uninstall(self, target: EnvTarget, specs: Sequence[PackageSpec]) -> UninstallResult:
        """Remove packages from ``target``; the server's environment is never touched, nor
        the shared environment when the target is a session's folder."""
        async with self.lock_for(target.lock_key):
            started = time.perf_counter()
            own, shared = await self.scan(target)
            present = [spec for spec in specs if spec.name in own]
            after = own
            if present:
                names = [spec.name for spec in present]
                where = ["--target", str(target.session_site)] if target.session_site else []
                if self.config.uv:
                    argv = [
                        self.config.uv, "pip", "uninstall", "--python", str(target.python),
                        *where, "--no-config", "--color", "never", "--", *names,
                    ]  # fmt: skip
                else:
                    argv = [str(target.python), "-m", "pip", "uninstall", "-y", "--", *names]
                result = await self._run(argv, target, f"uninstalling {', '.join(names)}")
                if not result.ok:
                    raise PackageInstallationError(
                        f"could not uninstall {', '.join(names)}: {self._reason(result, target)}"
                    )
                after, _ = await self.scan(target)
            outcomes = []
            for spec in specs:
                if spec.name in own and spec.name not in after:
                    outcomes.append(
                        UninstallOutcome(
                            name=spec.name, status="removed", version=own[spec.name][1]
                        )
                    )
                elif spec.name in own:
                    raise PackageInstallationError(
                        f"{spec.name} is still installed after uninstall"
                    )
                else:
                    status = next(
                        (f"provided_by_{loc}" for dists, loc in shared if spec.name in dists),
                        "not_installed",
                    )
                    outcomes.append(
                        UninstallOutcome.model_validate({"name": spec.name, "status": status})
                    )
            return UninstallResult(
                venv_name=target.name,
                session_id=target.session_id,
                installer=("uv" if self.config.uv else "pip") if present else "none",
                packages=outcomes,
                duration_seconds=round(time.perf_counter() - started, 3),
                message=_uninstall_message(outcomes),
            )

    # --- messages ----------------------------------------------------------------------
    def hide_paths(self, text: str, target: EnvTarget | None = None) -> str:
        """Replace the server's absolute paths in installer output with labels."""
        pairs = list(self.config.hidden_paths)
        if target is not None:
            pairs.append((str(target.root), f"<venv {target.name}>"))
        for path, label in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
            if len(path) > 1:  # never "/": that would mangle every path
                text = text.replace(path, label)
        return text

    def _reason(self, result: CommandResult, target: EnvTarget) -> str:
        lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines()]
        useful = [line for line in lines if line and not _NOISE.match(line)]
        errors = [line for line in useful if line.startswith(("ERROR:", "error:"))]
        picked = (errors + [line for line in useful if line not in errors]) if errors else useful
        text = ""
        for line in picked:
            cleaned = re.sub(r"^(ERROR|error|cause|help|hint):\s*", "", line)
            joiner = ": " if line.startswith("cause:") else "; "
            text = f"{text}{joiner}{cleaned}" if text else cleaned
        text = self.hide_paths(
            text or f"the installer exited with code {result.returncode}", target
        )
        return text[:MAX_REASON_CHARS]


def _culprits(specs: Sequence[PackageSpec], reason: str) -> list[str]:
    """The requested packages a failure message talks about."""
    words = {canonicalize_name(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", reason)}
    return [spec.name for spec in specs if spec.name in words]


def _install_message(outcomes: Sequence[PackageOutcome], changes: Sequence[PackageChange]) -> str:
    done = [f"{o.name} {o.version}" for o in outcomes if o.status in ("installed", "updated")]
    kept = [o.name for o in outcomes if o.status == "already_satisfied"]
    parts = []
    if done:
        parts.append(f"installed {', '.join(done)}")
        extra = len(changes) - len(done)
        if extra > 0:
            parts.append(f"with {extra} dependenc{'y' if extra == 1 else 'ies'}")
    if kept:
        parts.append(f"already satisfied: {', '.join(kept)}")
    if any(o.status == "updated" for o in outcomes):
        parts.append("modules already imported keep their old version until restart_kernel")
    return "; ".join(parts) or "nothing to do"


def _uninstall_message(outcomes: Sequence[UninstallOutcome]) -> str:
    removed = [f"{o.name} {o.version}" for o in outcomes if o.status == "removed"]
    server = [o.name for o in outcomes if o.status == "provided_by_server"]
    shared = [o.name for o in outcomes if o.status == "provided_by_environment"]
    absent = [o.name for o in outcomes if o.status == "not_installed"]
    parts = []
    if removed:
        parts.append(f"removed {', '.join(removed)}")
    if server:
        parts.append(
            f"{', '.join(server)} come(s) from the server's environment, which is never "
            "changed; not removed"
        )
    if shared:
        parts.append(
            f"{', '.join(shared)} come(s) from the shared environment, which a session's "
            "uninstall never changes; not removed"
        )
    if absent:
        parts.append(f"not installed: {', '.join(absent)}")
    return "; ".join(parts)
