"""Fork templates: one process per environment that has imported the preload and forks kernels.

A template is ``kernel_program`` in ``template`` mode (running ``template_program``),
started like a kernel (same interpreter, environment, working directory and resource
limits) but running no kernel and no user code: it imports the preload once, then forks a
child per request. Each child becomes a full kernel with its own connection file and key,
session and process group, log, and random state; the preloaded pages stay shared
copy-on-write, so a new session costs a fork and an ipykernel initialisation instead of an
interpreter start and the imports.

The server talks to a template over its stdin and stdout (JSON lines). Forked kernels are
the template's children, not the server's: the server watches each one through a pidfd,
and the template reports exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import select
from pathlib import Path
from typing import Any

import zmq.asyncio

from python_mcp_server.errors import KernelStartError
from python_mcp_server.infra.kernels.process_kernel import ProcessKernel
from python_mcp_server.infra.kernels.process_records import ProcessRecords
from python_mcp_server.infra.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

#: Seconds to wait for a template's exit report once a forked kernel's pidfd fired.
EXIT_REPORT_WAIT = 2.0


class ForkTemplate:
    """A running template process and the JSON-lines conversation with it."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.failures: dict[str, str] = {}
        #: Top-level modules a sandboxed template imported (``fork_guard.py`` reads them).
        self.modules: frozenset[str] = frozenset()
        #: The template proper ended while its sandbox lives on (``template_program.keep``).
        self.ended = False
        loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[dict[str, str]] = loop.create_future()
        self._forks: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read(), name="fork-template-reader")

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.returncode is None and not self._reader.done() and not self.ended

    async def wait_ready(self, timeout: float) -> dict[str, str]:
        """Wait for the preload to finish; return its failures."""
        try:
            self.failures = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except asyncio.TimeoutError as exc:
            raise KernelStartError(
                f"the fork template did not finish its preload within {timeout:g} s"
            ) from exc
        return self.failures

    async def fork(self, request: dict[str, Any], timeout: float) -> int:
        """Ask for a kernel; return its pid."""
        if not self.is_alive() or self.process.stdin is None:
            raise KernelStartError("the fork template is not running")
        number = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._forks[number] = future
        try:
            self.process.stdin.write((json.dumps({**request, "id": number}) + "\n").encode())
            await self.process.stdin.drain()
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise KernelStartError(f"the fork template did not fork a kernel: {exc}") from exc
        finally:
            self._forks.pop(number, None)

    def exit_report(self, pid: int) -> asyncio.Future[int]:
        """The exit code the template will report for one of its kernels."""
        future = self._exits.get(pid)
        if future is None:
            future = self._exits[pid] = asyncio.get_running_loop().create_future()
        return future

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                self._dispatch(message)
        finally:
            gone = KernelStartError("the fork template ended")
            pending: list[asyncio.Future[Any]] = [self._ready, *self._forks.values()]
            for future in pending:
                if not future.done():
                    future.set_exception(gone)
                    future.exception()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "ready" in message and not self._ready.done():
            self.modules = frozenset(str(name) for name in message.get("modules", ()))
            self._ready.set_result({str(k): str(v) for k, v in message["ready"].items()})
        elif "forked" in message:
            future = self._forks.get(int(message["forked"]))
            if future is not None and not future.done():
                future.set_result(int(message["pid"]))
        elif "exit" in message:
            report = self.exit_report(int(message["exit"]))
            if not report.done():
                report.set_result(int(message["status"]))
        elif "ended" in message:
            self.ended = True

    def forget(self, pid: int) -> None:
        """Drop the exit report of a kernel whose end was noted."""
        self._exits.pop(pid, None)

    async def aclose(self) -> None:
        """End the template (its kernels live on: each belongs to its session)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            if self.process.returncode is None:
                try:
                    await asyncio.wait_for(asyncio.shield(self.process.wait()), 2.0)
                except asyncio.TimeoutError:
                    self.process.kill()  # the template alone, never its process group
        await self.process.wait()
        await cancel_and_wait(self._reader)


class ForkedKernel(ProcessKernel):
    """A kernel forked by a template: its child, not ours, so watched through a pidfd."""

    def __init__(
        self,
        pid: int,
        template: ForkTemplate,
        connection_info: dict[str, Any],
        files: list[Path],
        log_path: Path,
        context: zmq.asyncio.Context,
        records: ProcessRecords,
        label: str,
        report_pid: int | None = None,
    ) -> None:
        """``report_pid``: the pid the template names the kernel by, when that is not
        ``pid`` (a sandboxed template's own pid namespace)."""
        self._template = template
        self._failures = dict(template.failures)
        self._report_pid = pid if report_pid is None else report_pid
        self._report = template.exit_report(self._report_pid)
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            self._pidfd = None  # already ended and reaped
        super().__init__(pid, connection_info, files, log_path, context, records, label)

    def preload_failures(self) -> dict[str, str]:
        return dict(self._failures)

    def is_alive(self) -> bool:
        if self._exit is not None or self._pidfd is None:
            return False
        readable, _, _ = select.select([self._pidfd], [], [], 0)
        return not readable

    async def _ended(self) -> None:
        if self._pidfd is None:
            return
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def fire() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(self._pidfd, fire)
        try:
            await ended
        finally:
            loop.remove_reader(self._pidfd)

    async def _returncode(self) -> int | None:
        """The pidfd says when it ended; the template, its parent, reports the status."""
        await self._ended()
        returncode: int | None = None
        with contextlib.suppress(asyncio.TimeoutError, KernelStartError):
            returncode = await asyncio.wait_for(asyncio.shield(self._report), EXIT_REPORT_WAIT)
        self._template.forget(self._report_pid)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return returncode
