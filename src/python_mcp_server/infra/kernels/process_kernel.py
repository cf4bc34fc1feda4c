"""What every kernel process on this machine shares, however it was started.

A kernel started by the server (``local``) and one forked by a template (``template``)
differ only in how their exit is observed. Everything else lives here once: the IPC
channels, the log whose tail explains a death, interrupts and kills by process group, and
the clean-up when the process ends (its pid record and its runtime files).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from abc import abstractmethod
from pathlib import Path
from typing import Any

import zmq.asyncio

from python_mcp_server.infra.kernels.base import KernelChannels, KernelExit, LaunchedKernel
from python_mcp_server.infra.kernels.process_records import ProcessRecords, kill_process_tree
from python_mcp_server.infra.kernels.zmq_channels import ZmqKernelChannels

#: Lines ipykernel prints at start that say nothing about why it ended.
_NOISE = (
    "--existing",
    "To connect another client",
    "jupyter <app> --existing",
    # ipykernel's start-up banner about Ctrl-C: never a reason for anything
    "NOTE: When using the `ipython kernel` entry point",
    "To exit, you will have to explicitly quit this process",
    '"quit" from a client, or using Ctrl-',
    "To read more about this, see https://github.com/ipython/ipython/issues/2049",
)


def describe_exit(returncode: int | None, log_tail: str) -> str:
    """Turn a return code and the kernel's last words into a reason.

    A negative code is a signal; 129-192 is a signal too when a wrapper (bwrap, a shell)
    reports its child's death the shell way.
    """
    signum: int | None = None
    if returncode is not None and returncode < 0:
        signum = -returncode
    elif returncode is not None and 128 < returncode <= 192:
        signum = returncode - 128
    if returncode is None:
        reason = "the kernel process ended"
    elif signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        reason = f"the kernel process was killed by {name}"
        if name == "SIGKILL":
            reason += " (killed from outside, or out of memory)"
        elif name == "SIGSEGV":
            reason += " (segmentation fault)"
    else:
        reason = f"the kernel process exited with code {returncode}"
    lines = [
        line.strip()
        for line in log_tail.strip().splitlines()
        if line.strip() and not any(noise in line for noise in _NOISE)
    ]
    if lines:
        reason += ": " + " | ".join(lines[-3:])
    return reason


class ProcessKernel(LaunchedKernel):
    """A kernel process leading its own process group, reached over IPC sockets.

    Subclasses say how the process's end is seen (``_returncode``) and whether it is
    alive; they set their own fields, then call ``__init__`` here last, which starts
    watching for the end.
    """

    interrupt_mode = "signal"

    def __init__(
        self,
        pid: int,
        connection_info: dict[str, Any],
        files: list[Path],
        log_path: Path,
        context: zmq.asyncio.Context,
        records: ProcessRecords,
        label: str,
    ) -> None:
        self._pid = pid
        self._connection_info = connection_info
        self._files = files
        self._log_path = log_path
        self._context = context
        self._records = records
        self.kernel_id = label
        self._exit: KernelExit | None = None
        self._wait_task: asyncio.Task[KernelExit] = asyncio.create_task(self._wait())

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def connection_info(self) -> dict[str, Any]:
        return self._connection_info

    async def connect(self) -> KernelChannels:
        return ZmqKernelChannels(self._connection_info, self._context)

    @abstractmethod
    async def _returncode(self) -> int | None:
        """Wait for the process to end; its exit status when known."""

    async def _wait(self) -> KernelExit:
        returncode = await self._returncode()
        self._exit = KernelExit(returncode, describe_exit(returncode, self.output_tail()))
        self._records.remove(self._pid)
        for path in self._files:
            if path.is_dir():  # a kernel's own runtime folder, listed after its files
                with contextlib.suppress(OSError):
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)
        return self._exit

    def output_tail(self, limit: int = 2000) -> str:
        with contextlib.suppress(OSError), self._log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - limit))
            return log.read().decode("utf-8", "replace")
        return ""

    async def wait_exit(self) -> KernelExit:
        return await asyncio.shield(self._wait_task)

    async def send_interrupt_signal(self) -> None:
        if self.is_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGINT)

    async def kill(self) -> None:
        if self.is_alive():
            kill_process_tree(self._pid)
        try:
            await asyncio.shield(self._wait_task)  # the reaping goes on if we are cancelled
        except asyncio.CancelledError:
            if not self._wait_task.cancelled():
                raise  # our caller was cancelled: never swallow that
