"""Local kernels: ipykernel processes on this machine, reached over IPC sockets.

Each kernel leads its own process group, so an interrupt reaches the code it runs and a
kill ends everything it started. Its stderr goes to a log file whose tail explains a death.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq.asyncio
from jupyter_client.connect import write_connection_file

from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels import execute_tuning, kernel_program, template_program
from python_mcp_server.infra.kernels.base import (
    KernelLauncher,
    KernelLaunchRequest,
    LaunchedKernel,
)
from python_mcp_server.infra.kernels.kernel_program import PRELOAD_MARKER
from python_mcp_server.infra.kernels.process_kernel import ProcessKernel
from python_mcp_server.infra.kernels.process_records import ProcessRecords, kill_process_tree

logger = logging.getLogger(__name__)

#: Kernel options that shorten start-up and keep state out of the user's home, and the
#: line that trims ipykernel's work per execute (``execute_tuning.py``).
KERNEL_ARGS: tuple[str, ...] = (
    "--HistoryManager.enabled=False",
    "--IPKernelApp.quiet=True",
    "--Application.log_level=ERROR",
    *execute_tuning.KERNEL_ARGS,
)


IPC_CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


def program_source() -> str:
    """The text of ``kernel_program``, run by kernels as ``python -c``."""
    return Path(kernel_program.__file__).read_text(encoding="utf-8")


def template_source() -> str:
    """The text of ``template_program``, which the kernel program runs in template mode
    (sent as the ``template`` entry of its configuration)."""
    return Path(template_program.__file__).read_text(encoding="utf-8")


def short_runtime_dir(state_dir: Path) -> Path:
    """A folder for IPC sockets: sun_path allows ~107 bytes, so long state paths fall back."""
    preferred = state_dir / "run"
    if len(str(preferred)) <= 60:
        return preferred
    import tempfile

    return Path(tempfile.gettempdir()) / f"pmcp-{os.getuid()}-{os.getpid()}"


@dataclass(frozen=True)
class PreparedKernel:
    """A kernel about to start: its connection file, sockets and log, not yet a process."""

    name: str
    runtime_dir: Path
    connection_file: Path
    connection_info: dict[str, Any]
    files: list[Path]
    log_path: Path


def read_preload_failures(log_path: Path) -> dict[str, str]:
    """The preload failures a kernel wrote at start (before any user code could write)."""
    with contextlib.suppress(OSError), log_path.open("rb") as log:
        head = log.read(65536).decode("utf-8", "replace")
        for line in head.splitlines():
            if line.startswith(PRELOAD_MARKER):
                with contextlib.suppress(ValueError):
                    found = json.loads(line[len(PRELOAD_MARKER) :])
                    if isinstance(found, dict):
                        return {str(k): str(v) for k, v in found.items()}
    return {}


class LocalKernel(ProcessKernel):
    """A kernel process started by this server (its child: its exit is waited for)."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        connection_info: dict[str, Any],
        files: list[Path],
        log_path: Path,
        context: zmq.asyncio.Context,
        records: ProcessRecords,
        label: str,
    ) -> None:
        self._process = process
        super().__init__(process.pid, connection_info, files, log_path, context, records, label)

    def is_alive(self) -> bool:
        return self._process.returncode is None

    async def _returncode(self) -> int | None:
        return await self._process.wait()

    def preload_failures(self) -> dict[str, str]:
        return read_preload_failures(self._log_path)


class LocalLauncher(KernelLauncher):
    """Starts ipykernel processes with the requested interpreter, cwd and environment."""

    name = "local"

    def __init__(self, state_dir: Path, *, start_timeout: float = 60.0) -> None:
        self._state_dir = state_dir
        self._runtime_dir = short_runtime_dir(state_dir)
        self._log_dir = state_dir / "logs"
        self._records = ProcessRecords(state_dir / "kernels")
        self._context = zmq.asyncio.Context()
        self._start_timeout = start_timeout

    @property
    def records(self) -> ProcessRecords:
        return self._records

    def kernel_argv(self, request: KernelLaunchRequest, connection_file: Path) -> list[str]:
        """The command line of the kernel process (the sandbox launcher wraps it)."""
        args = ["-f", str(connection_file), *KERNEL_ARGS, *request.extra_args]
        # Always through the kernel program: it makes the kernel a child subreaper, so a
        # process it starts cannot escape its tree (a double-forked setsid daemon).
        config = self.program_config(request)
        config["mode"] = "kernel"
        return [request.python, "-c", program_source(), json.dumps(config), *args]

    def program_config(self, request: KernelLaunchRequest) -> dict[str, Any]:
        """What ``kernel_program`` does before the kernel starts; empty: nothing."""
        return {"preload": list(request.preload)} if request.preload else {}

    def kernel_runtime_dir(self, name: str) -> Path:
        """Folder of one kernel's connection file and sockets (the sandbox gives each its own)."""
        return self._runtime_dir

    def kernel_env(self, request: KernelLaunchRequest) -> dict[str, str]:
        env = dict(request.env)
        env["JPY_PARENT_PID"] = str(os.getpid())  # ipykernel exits when we die
        return env

    def prepare(self, request: KernelLaunchRequest) -> PreparedKernel:
        """Write a new kernel's connection file (a fresh key) and reserve its pid record."""
        name = uuid.uuid4().hex[:10]
        runtime_dir = self.kernel_runtime_dir(name)
        runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        connection_file = runtime_dir / f"k{name}.json"
        ipc_prefix = runtime_dir / f"k{name}"
        _, info = write_connection_file(
            str(connection_file),
            transport="ipc",
            ip=str(ipc_prefix),
            key=secrets.token_hex(32).encode(),
            kernel_name="python3",
        )
        files = [connection_file]
        ports: dict[str, Any] = dict(info)
        files += [Path(f"{ipc_prefix}-{ports[f'{ch}_port']}") for ch in IPC_CHANNELS]
        log_path = self._log_dir / f"{request.label}-{name}.log"
        self._records.reserve(name, str(connection_file))
        return PreparedKernel(name, runtime_dir, connection_file, dict(info), files, log_path)

    def finish(self, prepared: PreparedKernel, pid: int) -> list[Path]:
        """Record a started kernel's pid; return the files to remove when it ends."""
        self._records.add(pid, name=prepared.name)
        files = [*prepared.files, prepared.log_path]
        if prepared.runtime_dir != self._runtime_dir:
            files.append(prepared.runtime_dir)
        return files

    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        prepared = self.prepare(request)
        log = prepared.log_path.open("wb")
        spawn = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *self.kernel_argv(request, prepared.connection_file),
                cwd=str(request.cwd),
                env=self.kernel_env(request),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        )
        try:
            # A caller cancelled mid-spawn (a pool closing) must not orphan the process.
            process = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                started = await spawn
                kill_process_tree(started.pid)
                await started.wait()
            self._records.release(prepared.name)
            raise
        except OSError as exc:
            self._records.release(prepared.name)
            raise KernelStartError(f"could not start the kernel process: {exc}") from exc
        finally:
            log.close()
        files = self.finish(prepared, process.pid)
        return LocalKernel(
            process,
            prepared.connection_info,
            files,
            prepared.log_path,
            self._context,
            self._records,
            request.label,
        )

    async def reap_orphans(self) -> int:
        return await asyncio.to_thread(self._records.reap_orphans)

    async def aclose(self) -> None:
        # The safety net of shutdown: end any kernel this server recorded or was starting
        # that is still running (sessions and the pool have closed theirs by now).
        ended = await asyncio.to_thread(self._records.reap_orphans)
        if ended:
            logger.warning("ended %d kernel(s) still running at shutdown", ended)
        self._context.destroy(linger=0)
