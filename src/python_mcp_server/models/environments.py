"""Wire models of the environment tools: create, list, delete and describe venvs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from python_mcp_server.models.packages import InstallResult
from python_mcp_server.models.wire import WireModel

PreinstallState = Literal["none", "pending", "running", "done", "failed"]


class PreinstallStatus(WireModel):
    """Progress of MCP_PREINSTALLED_PACKAGES, installed into the default environment at start."""

    packages: list[str] = Field(default_factory=list)
    state: PreinstallState = Field(
        "none", description="none (nothing configured), pending, running, done or failed."
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    error: str | None = None
    result: InstallResult | None = None


class VenvInfo(WireModel):
    """One environment as list_venvs shows it."""

    name: str
    description: str = ""
    is_default: bool = Field(description="Sessions without venv_name run this environment.")
    python_version: str
    package_count: int = Field(description="Packages installed in the environment itself.")
    server_package_count: int = Field(
        description="Packages seen from the server's environment (not counted above)."
    )
    size_bytes: int = Field(description="Disk used by the environment's own files.")
    created_at: datetime | None = None
    sessions: list[str] = Field(default_factory=list, description="Sessions running it now.")
    preinstall: PreinstallStatus | None = Field(
        None, description="Preinstall progress (default environment only)."
    )


class VenvList(WireModel):
    """Every environment."""

    venvs: list[VenvInfo]
    total: int
    default_venv: str


class VenvAction(WireModel):
    """The outcome of create_venv, delete_venv or set_venv_description."""

    venv_name: str
    action: Literal["created", "deleted", "reset", "described"]
    message: str
    venv: VenvInfo | None = None
    duration_seconds: float | None = None
    install: InstallResult | None = Field(None, description="Packages installed at creation.")
