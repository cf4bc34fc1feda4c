"""The background install of ``MCP_PREINSTALLED_PACKAGES`` into the default environment.

It starts once the default environment exists and never delays readiness; its progress
(pending, running, done or failed, with the result or the error) is what ``list_venvs``
shows for the default environment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from python_mcp_server.core.packages.requirements import PackageSpec, parse_packages
from python_mcp_server.errors import InvalidInputError, ServerError
from python_mcp_server.infra.tasks import cancel_and_wait
from python_mcp_server.models.environments import PreinstallStatus
from python_mcp_server.models.packages import InstallResult

logger = logging.getLogger(__name__)

#: Installs the packages into the default environment (audited), calling ``running()``
#: once it holds the environment's lock and the install itself begins.
Install = Callable[[list[PackageSpec], Callable[[], None]], Awaitable[InstallResult]]
#: Called after a successful install (kernels of the environment refresh their caches).
Installed = Callable[[], Awaitable[None]]


class Preinstall:
    """One background preinstall and its status."""

    def __init__(self) -> None:
        self.status = PreinstallStatus()
        self._task: asyncio.Task[None] | None = None

    def start(self, packages: str, install: Install, installed: Installed) -> None:
        """Begin installing ``packages`` (the setting's text); nothing to do when empty."""
        if not packages.strip():
            return
        try:
            specs = parse_packages(packages)
        except InvalidInputError as exc:
            self.status = PreinstallStatus(state="failed", error=exc.message)
            logger.error("MCP_PREINSTALLED_PACKAGES is invalid: %s", exc.message)
            return
        self.status = PreinstallStatus(packages=[s.text for s in specs], state="pending")
        self._task = asyncio.create_task(self._run(specs, install, installed), name="preinstall")

    async def wait(self) -> PreinstallStatus:
        """Wait for the preinstall (if any) to finish; return its status."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.status

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _run(self, specs: list[PackageSpec], install: Install, installed: Installed) -> None:
        status = self.status

        def running() -> None:
            status.state = "running"
            status.started_at = datetime.now(timezone.utc)

        try:
            result = await install(specs, running)
            status.result = result
            status.state = "done"
            await installed()
            logger.info("preinstalled packages: %s", result.message)
        except ServerError as exc:
            status.state = "failed"
            status.error = exc.message
            logger.error("preinstalling packages failed: %s", exc.message)
        except Exception as exc:
            status.state = "failed"
            status.error = f"{type(exc).__name__}: {exc}"
            logger.exception("preinstalling packages failed")
        finally:
            status.finished_at = datetime.now(timezone.utc)
            if status.started_at is not None:
                status.duration_seconds = round(
                    (status.finished_at - status.started_at).total_seconds(), 3
                )
