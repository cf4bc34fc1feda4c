"""Sandboxed kernels forked from a preloaded template (``MCP_SANDBOX_FORK``).

The template runs only what the server owns: the server's own interpreter with the
server's site-packages, never an environment's interpreter, site-packages or ``.pth``
files, the workspace or the state folder (it does not see them), with no ``PYTHON*``
variable that names a folder and a ``sys.path`` checked against the server's
(``environment_program.start``). It is itself sandboxed, never root
(``template_command.py``: as the kernel user under a root server, as the server's own
user otherwise): an unprivileged bubblewrap puts it in a user namespace of its own (no
capabilities in it) with the kernels' read-only view of the system, empty /tmp, /run and
hidden folders, no environment, no workspace, no runtime folder, no network unless
kernels get the host's, its cgroups if any, and the template filter of ``seccomp.py``
(the kernels' filter less the calls its children need to isolate themselves). Its pid 1
(``template_program.keep``) outlives it while kernels run.

Each kernel is forked from it and isolates itself before any of its code runs
(``isolation_program.py``): it says hello on a control socket of its own, from which the
server reads its host pid, checks it descends from the template and moves it into the
kernel's memory and pids cgroups; then it makes its own user, mount, pid, ipc, uts,
cgroup and (unless ``allow``) network namespaces, becomes pid 1 of the new pid namespace,
mounts exactly what a bubblewrap kernel gets (the same ``bwrap_args``, translated by
``isolation_plan``; its runtime folder, workspace, session package folder and egress
socket arrive as detached mounts, ``detached_mounts.py``, made by the server itself if
it is root, else by its ``mount_helper.py``), drops every capability, sets
``no_new_privs``, installs the kernels' seccomp filter and says it is isolated; a kernel
under ``allowlist`` hands over with that a socket listening on the egress proxy's port
of its own loopback, which the proxy serves (no forwarder process). Then it becomes its
environment's interpreter (``environment_program.enter``: its ``sys.path``, prefixes and
``.pth`` files, as bubblewrap would start it). Only then is the kernel returned; on any
failure it is killed and the kernel starts the ordinary bubblewrap way, as it does when
no template can serve, and as kernels of an environment that installs a module the
template imported do (``fork_guard.py``).

What the template holds: the preload's imports from the server's packages, and briefly
the descriptors it passes to each child. It never sees another
environment's kernels, and its kernels cannot see it or each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels import fork_guard, reaper, seccomp, template_command
from python_mcp_server.infra.kernels.base import KernelLaunchRequest, LaunchedKernel
from python_mcp_server.infra.kernels.cgroups import CgroupLimits
from python_mcp_server.infra.kernels.detached_mounts import detach
from python_mcp_server.infra.kernels.local import KERNEL_ARGS
from python_mcp_server.infra.kernels.mount_helper import MountHelper
from python_mcp_server.infra.kernels.privileges import hand_over
from python_mcp_server.infra.kernels.process_records import kill_process_tree
from python_mcp_server.infra.kernels.sandbox import BwrapLauncher, _remove_all
from python_mcp_server.infra.kernels.sandbox_template import (
    SandboxTemplate,
    credentials_pid,
    isolation_plan,
    release,
)
from python_mcp_server.infra.kernels.template import ForkedKernel
from python_mcp_server.infra.kernels.template_command import TemplateSpec
from python_mcp_server.infra.kernels.template_set import TemplateOwner, TemplateSet
from python_mcp_server.infra.kernels.template_view import (
    hidden_from_template,
    template_variables,
)
from python_mcp_server.infra.network.forwarder import PROXY_PORT
from python_mcp_server.infra.tasks import retrieve_outcomes

logger = logging.getLogger(__name__)

_Key = tuple[str, tuple[tuple[str, str], ...], tuple[str, ...], bool, tuple[str, ...]]

#: Seconds the templates' sandboxes may take to end once the server shuts down.
RETIRE_WAIT = 5.0
#: Template starts that may fail in a row before kernels stop waiting for one (until
#: packages change): a host that cannot run it (no user namespaces for the kernel user)
#: would otherwise try again, and say so, at every kernel start.
START_FAILURES_LIMIT = 3


class SandboxForkLauncher(TemplateOwner[_Key, SandboxTemplate], BwrapLauncher):
    """Bubblewrap kernels, forked from a sandboxed template when asked to preload."""

    preload_mode = "fork"

    def __init__(self, *args: Any, mount_helper: MountHelper | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Makes the detached mounts under a server that is not root (``mount_helper.py``).
        self.mount_helper = mount_helper
        self._set: TemplateSet[_Key, SandboxTemplate] = TemplateSet(
            self._start_template, self._end_template
        )
        #: Templates ended or failed, until their sandbox ends: the clean-up waiting for it.
        self._retired: dict[SandboxTemplate, asyncio.Task[None]] = {}
        #: Every template started and not yet cleaned up after, retired or not.
        self._live: set[SandboxTemplate] = set()
        self._closing = False
        self.forked = 0
        #: Templates whose kernels start the ordinary way, and why (until packages change).
        self._refused: dict[_Key, str] = {}
        #: Of those, templates that failed to import the preload, for good.
        self._failed: dict[_Key, str] = {}
        #: The modules the last template of a preload imported (checked before a start).
        self._imported: dict[tuple[str, ...], frozenset[str]] = {}
        #: Template starts failed in a row, and why the last one did.
        self._start_failures = 0
        self._start_problem: str | None = None
        self._template_filter: Path | None = None
        seccomp_file = self.config.confinement.seccomp_file
        if seccomp_file is not None:
            self._template_filter = seccomp_file.with_name(f"seccomp-template-{seccomp_file.name}")
            program = seccomp.build_filter(template=True)
            if not self._template_filter.is_file() or self._template_filter.read_bytes() != program:
                temp = self._template_filter.with_suffix(".part")
                temp.write_bytes(program)
                temp.replace(self._template_filter)

    def forks(self, request: KernelLaunchRequest) -> bool:
        """Whether this request is served by a template: ``_forkable``, and its
        environment not found to shadow the template's imports (``fork_guard.py``)."""
        return (
            self._forkable(request)
            and self._key(request) not in self._refused
            and self._start_failures < START_FAILURES_LIMIT
        )

    def _forkable(self, request: KernelLaunchRequest) -> bool:
        """A preload, a way to make detached mounts (a root server, whose template runs
        as the kernel user, or else the mount helper) and a seccomp filter."""
        confinement = self.config.confinement
        return (
            bool(request.preload)
            and (confinement.user is not None or self.mount_helper is not None)
            and (confinement.seccomp_file is not None and self._template_filter is not None)
        )

    def _template_env(self, request: KernelLaunchRequest) -> dict[str, str]:
        return template_variables(self.kernel_env(request), request.own_variables)

    def _template_hidden(self, request: KernelLaunchRequest) -> tuple[Path, ...]:
        return hidden_from_template(request, self.config.hidden_paths)

    def _key(self, request: KernelLaunchRequest) -> _Key:
        env = tuple(sorted(self._template_env(request).items()))
        shared_network = self.network_of(request).mode == "allow"
        hidden = tuple(str(path) for path in self._template_hidden(request))
        return (request.python, env, request.preload, shared_network, hidden)

    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        if not self._forkable(request):
            return await super().launch(request)
        if self._closing:  # no template may start once the templates are being ended
            raise KernelStartError("the server is stopping")
        key = self._key(request)  # before its egress socket joins its variables
        refused = self._refused.get(key)
        if refused is None and self._start_failures >= START_FAILURES_LIMIT:
            refused = f"the fork template does not start here ({self._start_problem})"
        imported = self._imported.get(request.preload)
        if refused is None and imported is not None:  # known before a template starts
            refused = await self._refusal(key, request, imported)
        template = None if refused else await self._set.get(key, request)
        if template is not None and (template.failures or template.modules != imported):
            self._imported[request.preload] = template.modules
            refused = await self._refusal(key, request, template.modules, template.failures)
            if key in self._refused:  # of no use to this environment until it changes
                await self._set.drop(key, template)
        if template is None or refused is not None:
            kernel = await super().launch(request)
            kernel.unforked = refused
            return kernel
        egress = await self._open_egress(request)
        try:
            kernel = await self._fork_unless_cancelled(template, request, egress)
        except KernelStartError as exc:
            if egress is not None and self.proxy is not None:
                await self.proxy.close_listener(egress)
            self._set.note_problem(f"the fork template failed ({exc}); starting a plain kernel")
            await self._set.drop(key, template)
            kernel = await super().launch(request)
            kernel.unforked = f"the fork template failed ({exc})"
            return kernel
        except BaseException:
            if egress is not None and self.proxy is not None:
                await self.proxy.close_listener(egress)
            raise
        finally:
            self._egress_of.pop(id(request), None)
        if egress is not None and self.proxy is not None:
            proxy = self.proxy
            self._after_exit(kernel, lambda: proxy.close_listener(egress))
        self.forked += 1
        return kernel

    async def _refusal(
        self,
        key: _Key,
        request: KernelLaunchRequest,
        imported: frozenset[str],
        failures: dict[str, str] | None = None,
    ) -> str | None:
        """Why this kernel must start the ordinary way instead (``fork_guard.py``); a
        reason that holds for every kernel of the environment is kept until it changes."""
        python = request.python
        reason = await asyncio.to_thread(fork_guard.refusal, python, imported, failures)
        if reason is not None:
            self._refused[key] = reason
            if failures:  # from the server's packages alone: no install changes that
                self._failed[key] = reason
            return reason
        folders = fork_guard.path_folders(request.env)  # the session's own packages
        if not folders:
            return None
        return await asyncio.to_thread(fork_guard.shadowed, folders, imported)

    async def _fork_unless_cancelled(
        self, template: SandboxTemplate, request: KernelLaunchRequest, egress: Path | None
    ) -> LaunchedKernel:
        """``_fork``; a caller cancelled meanwhile (a pool closing) must not orphan the
        kernel: it is forked to the end, then killed."""
        work = asyncio.ensure_future(self._fork(template, request, egress))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                started = await work
                await started.kill()
            raise

    async def _fork(
        self, template: SandboxTemplate, request: KernelLaunchRequest, egress: Path | None
    ) -> LaunchedKernel:
        prepared = self.prepare(request)
        cgroups: list[Path] = []
        fds: list[int] = []
        pid: int | None = None
        server_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            if self.cgroups is not None:
                limits = CgroupLimits(
                    max_tasks=self.max_tasks,
                    memory_bytes=self.limits.memory_bytes if self.cgroups.memory else None,
                )
                cgroups = await asyncio.to_thread(
                    self.cgroups.for_kernel, prepared.connection_file.stem, limits
                )
            user = self.config.confinement.user
            seccomp_file = self.config.confinement.seccomp_file
            if seccomp_file is None:
                raise KernelStartError("no seccomp filter to fork with")
            if user is not None:
                hand_over(prepared.runtime_dir, user)
                hand_over(prepared.connection_file, user)
                self._hand_over_own_folders(request, user)
                if egress is not None:
                    hand_over(egress, user)
            counted = bool(cgroups) and self.cgroups is not None and self.cgroups.memory
            plan, sources, own_network = isolation_plan(
                self.bwrap_args(request, prepared.runtime_dir, tmpfs_counted=counted)
            )
            server_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            fds.append(child_end.fileno())
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            fds.append(os.open(prepared.log_path, flags, 0o600))
            for source, read_only in sources:
                fds.append(await self._detach(source, read_only))
            env = self.kernel_env(request)
            order = {
                "argv": ["-f", str(prepared.connection_file), *KERNEL_ARGS, *request.extra_args],
                "cwd": str(request.cwd),
                "env": env,
                "environment": {"python": request.python},
                "isolation": {
                    "listen": PROXY_PORT if egress is not None else None,
                    "mounts": plan,
                    "own_network": own_network,
                    "seccomp": seccomp_file.read_bytes().hex(),
                    "reaper": reaper.program(),
                    # Under a server that is not root, the process limit counts in the
                    # child's own user namespace, as in a bubblewrap kernel's.
                    "nproc": self.limits.max_processes if user is None else None,
                },
            }
            report_pid = await template.fork_with(order, fds, self._start_timeout)
            child_end.close()  # the child holds it now: its end shows as end of input
            timeout = self._start_timeout
            pid = await asyncio.to_thread(credentials_pid, server_end, timeout)
            if not template.descends(pid):
                raise KernelStartError(f"pid {pid} is not a process of the fork template")
            for folder in cgroups:
                (folder / "cgroup.procs").write_text(str(pid))
            port = PROXY_PORT if egress is not None else None
            listener = await asyncio.to_thread(release, server_end, timeout, port)
            if listener is not None and egress is not None and self.proxy is not None:
                await self.proxy.adopt(egress, listener)
        except (KernelStartError, OSError, ValueError) as exc:
            if pid is not None:
                kill_process_tree(pid)
            self._records.release(prepared.name)
            if cgroups:
                await asyncio.to_thread(_remove_all, cgroups)
            for path in prepared.files:
                path.unlink(missing_ok=True)
            raise KernelStartError(f"{exc}{template.log_tail()}") from exc
        finally:
            server_end.close()
            child_end.close()
            for fd in fds[1:]:
                os.close(fd)
        files = self.finish(prepared, pid)
        kernel: LaunchedKernel = ForkedKernel(
            pid,
            template,
            prepared.connection_info,
            files,
            prepared.log_path,
            self._context,
            self._records,
            request.label,
            report_pid=report_pid,
        )
        kernel.interrupt_mode = "message"  # as a bubblewrap kernel's
        if cgroups:
            self._after_exit(kernel, lambda: asyncio.to_thread(_remove_all, cgroups))
        return kernel

    async def _detach(self, source: Path, read_only: bool) -> int:
        """A detached mount of ``source``: made here under a root server, else by the
        mount helper."""
        if self.mount_helper is None:
            return detach(source, read_only=read_only)
        return await asyncio.to_thread(self.mount_helper.detach, source, read_only=read_only)

    def template_argv(self, request: KernelLaunchRequest, cgroups: list[Path]) -> list[str]:
        """The template's command (``template_command.py``): as the kernel user under a
        root server, else as the server's own user."""
        if self._template_filter is None:
            raise ValueError("sandboxed templates need a seccomp filter")
        limits = self.limits.rlimits()
        if self.config.confinement.user is None:  # each child sets it in its own namespace
            limits = [pair for pair in limits if pair[0] != "RLIMIT_NPROC"]
        spec = TemplateSpec(
            config=self.config,
            hidden=self._template_hidden(request),
            shared_network=self.network_of(request).mode == "allow",
            preload=request.preload,
            extra_args=tuple(request.extra_args),
            limits=tuple(limits),
            template_filter=self._template_filter,
        )
        if self.config.confinement.user is None:
            return template_command.user_argv(spec, cgroups)
        return template_command.root_argv(spec, cgroups)

    async def _start_template(
        self, key: _Key, request: KernelLaunchRequest
    ) -> SandboxTemplate | None:
        """Start a template and record it (even if whoever asked was cancelled meanwhile:
        it is then found by the next request, and ended at shutdown)."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"template-{os.urandom(5).hex()}.log"
        cgroups: list[Path] = []
        server_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            if self.cgroups is not None:
                limits = CgroupLimits(
                    max_tasks=self.max_tasks,
                    memory_bytes=self.limits.memory_bytes if self.cgroups.memory else None,
                )
                name = f"kt{uuid.uuid4().hex[:10]}"
                cgroups = await asyncio.to_thread(self.cgroups.for_kernel, name, limits)
            with log_path.open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    *self.template_argv(request, cgroups),
                    env=self._template_env(request),
                    stdin=child_end.fileno(),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                )
        except (OSError, ValueError) as exc:
            server_end.close()
            if cgroups:
                await asyncio.to_thread(_remove_all, cgroups)
            self._start_failed(f"could not start the sandboxed fork template: {exc}")
            return None
        finally:
            child_end.close()
        self._records.add(process.pid)
        template = SandboxTemplate(process, log_path, server_end, cgroups)
        self._live.add(template)
        try:
            await template.wait_ready(self._start_timeout)
        except KernelStartError as exc:
            self._start_failed(f"{exc}{template.log_tail()}")
            self._retire(template)
            return None
        self._start_failures = 0
        return template

    def _start_failed(self, problem: str) -> None:
        self._start_failures += 1
        self._start_problem = problem
        given_up = self._start_failures >= START_FAILURES_LIMIT
        after = "; kernels start the ordinary way until packages change" if given_up else ""
        self._set.note_problem(f"{problem}; starting plain kernels{after}")

    async def _end_template(self, template: SandboxTemplate) -> None:
        self._retire(template)

    def _retire(self, template: SandboxTemplate) -> None:
        """End the template proper now; clean up after its sandbox once its last kernel
        ended (its pid 1 then exits)."""
        template.retire()
        if template in self._retired:
            return

        async def clean_up() -> None:
            await template.process.wait()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(template.reader, 1.0)
            self._records.remove(template.pid)
            template.log_path.unlink(missing_ok=True)
            if template.cgroups:
                await asyncio.to_thread(_remove_all, template.cgroups)
            self._live.discard(template)

        task = asyncio.create_task(clean_up())
        self._retired[template] = task
        task.add_done_callback(lambda _: self._retired.pop(template, None))

    async def environment_changed(self) -> None:
        """An environment's packages changed: look at every environment again. The
        templates stay: what they imported comes from the server's packages, which no
        install changes, and each child takes its environment as it is when it forks."""
        self._refused = dict(self._failed)
        self._start_failures = 0

    async def aclose(self) -> None:
        self._closing = True
        starting = self._set.starting
        if starting:  # a start under way ends first, then is retired with the rest
            await asyncio.wait(starting, timeout=RETIRE_WAIT)
            for pending in starting:
                pending.cancel()
            await asyncio.wait(starting)
            retrieve_outcomes(starting)
        await self._set.end_all()
        for template in list(self._live):
            self._retire(template)
        tasks = dict(self._retired)
        if tasks:  # the sessions ended their kernels by now: the sandboxes end with them
            await asyncio.wait(tasks.values(), timeout=RETIRE_WAIT)
            for template, task in tasks.items():
                if not task.done():
                    kill_process_tree(template.pid)
            await asyncio.wait(tasks.values())
            retrieve_outcomes(tasks.values())
        if self.mount_helper is not None:
            self.mount_helper.close()
        await super().aclose()
