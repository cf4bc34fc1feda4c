"""The local launcher that forks preloaded kernels from a template per environment.

A launch request with a preload is served by the template of its environment (same
interpreter, working directory, variables and preload), started on first use. When no
template can serve (it failed to start, died, or too many environments want one), the
request is served as a plain launch, whose kernel imports the preload itself: a
template's trouble never fails a kernel start. A template that died is replaced at the
next request. Requests without a preload are plain launches.

Only unsandboxed kernels fork: a forked child shares its template's namespaces, so
inside bubblewrap it would share one sandbox with every other session (see
docs/performance.md for the trade-off).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.base import KernelLaunchRequest, LaunchedKernel
from python_mcp_server.infra.kernels.limits import LimitedLauncher, ResourceLimits
from python_mcp_server.infra.kernels.local import KERNEL_ARGS, program_source, template_source
from python_mcp_server.infra.kernels.template import ForkedKernel, ForkTemplate
from python_mcp_server.infra.kernels.template_set import TemplateOwner, TemplateSet

logger = logging.getLogger(__name__)

_Key = tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...]]


class TemplateLauncher(TemplateOwner[_Key, ForkTemplate], LimitedLauncher):
    """Local kernels under limits, forked from a preloaded template when asked to preload."""

    name = "local"
    preload_mode = "fork"

    def __init__(
        self, state_dir: Path, limits: ResourceLimits, *, start_timeout: float = 60.0
    ) -> None:
        super().__init__(state_dir, limits, start_timeout=start_timeout)
        self._set: TemplateSet[_Key, ForkTemplate] = TemplateSet(self._start_template, self._close)
        self.forked = 0

    def _key(self, request: KernelLaunchRequest) -> _Key:
        env = tuple(sorted(self._template_env(request).items()))
        return (request.python, str(request.cwd), env, request.preload, request.extra_args)

    def _template_env(self, request: KernelLaunchRequest) -> dict[str, str]:
        """The variables a template shares with every kernel it forks: not a kernel's own
        (its session's ``PYTHONPATH``...), which the forked child applies itself."""
        env = self.kernel_env(request)
        for name in request.own_variables:
            env.pop(name, None)
        env.pop("JPY_PARENT_PID", None)
        return env

    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        if not request.preload:
            return await super().launch(request)
        template = await self._set.get(self._key(request), request)
        if template is None:
            return await self._unforked(request, "no fork template can serve")
        prepared = self.prepare(request)
        env = self.kernel_env(request)
        env.pop("JPY_PARENT_PID", None)  # a forked kernel watches the server itself
        order = {
            "argv": ["-f", str(prepared.connection_file), *KERNEL_ARGS, *request.extra_args],
            "cwd": str(request.cwd),
            "env": env,
            "log": str(prepared.log_path),
        }
        try:
            pid = await template.fork(order, self._start_timeout)
        except KernelStartError as exc:
            self._records.release(prepared.name)
            self._set.note_problem(f"the fork template failed ({exc}); starting a plain kernel")
            await self._set.drop(self._key(request), template)
            return await self._unforked(request, "the fork template failed")
        self.forked += 1
        files = self.finish(prepared, pid)
        if template.failures:  # the caller falls back to plain kernels; this one is served
            await self._set.drop(self._key(request), template)
        return ForkedKernel(
            pid,
            template,
            prepared.connection_info,
            files,
            prepared.log_path,
            self._context,
            self._records,
            request.label,
        )

    async def _unforked(self, request: KernelLaunchRequest, why: str) -> LaunchedKernel:
        """A kernel started whole because no template served it, saying why (the pool then
        keeps its shallow depth: such kernels cost their whole size)."""
        kernel = await super().launch(request)
        problem = self._set.problem
        kernel.unforked = f"{why} ({problem})" if problem else why
        return kernel

    async def _start_template(self, key: _Key, request: KernelLaunchRequest) -> ForkTemplate | None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"template-{os.urandom(5).hex()}.log"
        config = {
            "mode": "template",
            "preload": list(request.preload),
            "limits": [list(pair) for pair in self.limits.rlimits()],
            "server_pid": os.getpid(),
            "kernel_args": [*KERNEL_ARGS, *request.extra_args],  # parsed once, in the template
            "template": template_source(),
        }
        env = self._template_env(request)
        try:
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    request.python,
                    "-c",
                    program_source(),
                    json.dumps(config),
                    cwd=str(request.cwd),
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                )
        except OSError as exc:
            self._set.note_problem(f"could not start the fork template: {exc}")
            return None
        self._records.add(process.pid)
        template = ForkTemplate(process, log_path)
        try:
            await template.wait_ready(self._start_timeout)
        except KernelStartError as exc:
            self._set.note_problem(f"{exc}; starting plain kernels")
            await self._close(template)
            return None
        return template

    async def _close(self, template: ForkTemplate) -> None:
        await template.aclose()
        self._records.remove(template.pid)
        template.log_path.unlink(missing_ok=True)

    async def environment_changed(self) -> None:
        """End every template (an environment's packages changed: its preload is stale)."""
        await self._set.end_all()

    async def aclose(self) -> None:
        for pending in self._set.starting:
            pending.cancel()
        await self.environment_changed()
        await super().aclose()
