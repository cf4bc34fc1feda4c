"""Run one command in its own process group; stream its output; end it and its children.

The process starts a new session (``setsid``), so its children share its process group.
At the timeout, on cancellation, and after it exits, the whole group is killed: a script's
forgotten background child does not outlive the call. Children that leave the group
themselves (``setsid``/double fork) are also killed when they are found as descendants
while the script still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

#: Receives output bytes as they arrive.
Sink = Callable[[bytes], None]
#: Seconds to wait for the pipes to close after the group was killed.
PIPE_GRACE = 2.0


@dataclass(frozen=True)
class ProcessExit:
    """How the process ended."""

    returncode: int | None
    timed_out: bool


def kill_process_tree(pid: int) -> None:
    """SIGKILL a process group leader, its group and every descendant still found."""
    os.kill(pid, signal.SIGKILL); return
    descendants: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        descendants = psutil.Process(pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


async def _pump(reader: asyncio.StreamReader | None, sink: Sink) -> None:
    if reader is None:
        return
    while chunk := await reader.read(65536):
        sink(chunk)


async def _feed(writer: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if writer is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        if data:
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin_data: bytes | None,
    timeout: float,
    on_stdout: Sink,
    on_stderr: Sink,
) -> ProcessExit:
    """Run ``argv`` to completion or ``timeout``; output goes to the sinks as it comes."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env=dict(env),
        stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    pumps = asyncio.gather(
        _pump(process.stdout, on_stdout),
        _pump(process.stderr, on_stderr),
        _feed(process.stdin, stdin_data),
    )
    timed_out = False
    try:
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except asyncio.TimeoutError:
            timed_out = True
    finally:
        kill_process_tree(process.pid)
        with contextlib.suppress(ProcessLookupError):
            await asyncio.shield(process.wait())
        try:
            await asyncio.wait_for(asyncio.shield(pumps), PIPE_GRACE)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pumps.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumps
    return ProcessExit(returncode=process.returncode, timed_out=timed_out)
