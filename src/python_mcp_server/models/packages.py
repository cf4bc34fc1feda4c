"""Wire models of the package tools and of auto-install's report in execution results."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from python_mcp_server.models.wire import WireModel

#: Where the copy a kernel imports lives: the session's own package folder, the
#: environment, or the server's environment that every managed environment sees
#: (read-only for installs).
PackageLocation = Literal["session", "environment", "server"]


class PackageInfo(WireModel):
    """One distribution a kernel of the environment can import."""

    name: str
    version: str
    location: PackageLocation = Field(
        description="`session`: in the session's own package folder; `environment`: "
        "installed in the environment; `server`: seen from the server's environment "
        "(installs never change that one)."
    )


class PackageList(WireModel):
    """What list_packages returns."""

    venv_name: str
    session_id: str | None = Field(
        None, description="The session whose own package folder was listed, if any."
    )
    packages: list[PackageInfo]
    total: int = Field(description="Number of packages listed.")
    environment_total: int = Field(
        description="How many are installed in the target: the session's folder when "
        "session_id is set, else the environment."
    )


class PackageOutcome(WireModel):
    """What happened to one requested package."""

    requirement: str = Field(description="The specifier as validated.")
    name: str = Field(description="Canonical distribution name.")
    status: Literal["installed", "updated", "already_satisfied", "skipped"] = Field(
        description="`installed`: new; `updated`: a different version is now used; "
        "`already_satisfied`: nothing to do; `skipped`: its marker does not apply."
    )
    version: str | None = Field(None, description="Version kernels now import.")
    previous_version: str | None = Field(None, description="Version before, if any.")
    location: PackageLocation | None = None


class PackageChange(WireModel):
    """A distribution added, changed or removed in the environment (dependencies too)."""

    name: str
    version: str | None = Field(None, description="Version now installed (None: removed).")
    previous_version: str | None = None


class InstallResult(WireModel):
    """What install_dependencies returns."""

    venv_name: str
    session_id: str | None = Field(
        None,
        description="Set when the packages went to this session's own package folder "
        "(seen by its kernel only, removed with the session); null: into the environment.",
    )
    installer: Literal["uv", "pip", "none"] = Field(
        description="The tool that ran; `none` when everything was already satisfied."
    )
    packages: list[PackageOutcome]
    changes: list[PackageChange] = Field(
        default_factory=list, description="Every distribution the install changed."
    )
    duration_seconds: float
    sessions_refreshed: list[str] = Field(
        default_factory=list,
        description="Running sessions of this environment told to see the new packages.",
    )
    message: str


class UninstallOutcome(WireModel):
    """What happened to one package named for removal."""

    name: str
    status: Literal["removed", "not_installed", "provided_by_environment", "provided_by_server"]
    version: str | None = Field(None, description="The version removed, if any.")


class UninstallResult(WireModel):
    """What uninstall_packages returns."""

    venv_name: str
    session_id: str | None = Field(
        None, description="Set when the session's own package folder was the target."
    )
    installer: Literal["uv", "pip", "none"]
    packages: list[UninstallOutcome]
    duration_seconds: float
    message: str


class DependenciesInfo(WireModel):
    """Auto-install's report (MCP_AUTO_INSTALL): imports that were missing and what it did."""

    venv_name: str
    missing_imports: list[str] = Field(
        description="Top-level modules the code imports that the environment did not have."
    )
    requested: list[str] = Field(description="Distributions asked of the installer.")
    installed: list[PackageOutcome] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list, description="Distributions not installed.")
    error: str | None = Field(None, description="The installer's reason when it failed.")
    duration_seconds: float = 0.0
