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
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
    descendants: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        descendants = psutil.Process(pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _feed(stdin: IO[bytes] | None, data: bytes | None) -> None:
    """Write stdin in a thread: a script that never reads it must not block the server."""
    if stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
        if data:
            stdin.write(data)
        stdin.close()


class _Reader:
    """Reads a pipe from the event loop as data arrives; ``eof`` completes at end of file."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe: IO[bytes], sink: Sink) -> None:
        self._loop = loop
        self._pipe = pipe
        self._fd = pipe.fileno()
        self._sink = sink
        self.eof: asyncio.Future[None] = loop.create_future()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._ready)

    def _ready(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._sink(data)
        else:
            self.close()

    def close(self) -> None:
        if not self.eof.done():
            self._loop.remove_reader(self._fd)
            self.eof.set_result(None)
            self._pipe.close()


def _spawn(
    argv: list[str], cwd: Path, env: dict[str, str], with_stdin: bool
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        cwd=str(cwd),
        env=env,
        stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )


def _kill_spawned(spawn: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    """A process started for a call that was cancelled meanwhile: end it."""
    if not spawn.cancelled() and spawn.exception() is None:
        process = spawn.result()
        kill_process_tree(process.pid)
        process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


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
    """Run ``argv`` to completion or ``timeout``; output goes to the sinks as it comes.

    The exit is awaited with ``waitpid`` (in a thread), not through the pipes: a
    grandchild that escaped and still holds them cannot keep the call waiting.
    """
    spawn = asyncio.ensure_future(
        asyncio.to_thread(_spawn, list(argv), cwd, dict(env), stdin_data is not None)
    )
    try:
        process: subprocess.Popen[bytes] = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        spawn.add_done_callback(_kill_spawned)
        raise
    loop = asyncio.get_running_loop()
    assert process.stdout is not None
    assert process.stderr is not None
    readers = [_Reader(loop, process.stdout, on_stdout), _Reader(loop, process.stderr, on_stderr)]
    feeder = asyncio.ensure_future(asyncio.to_thread(_feed, process.stdin, stdin_data))
    exited = asyncio.ensure_future(asyncio.to_thread(process.wait))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(exited), timeout)
        except asyncio.TimeoutError:
            timed_out = True
    finally:
        kill_process_tree(process.pid)
        await asyncio.shield(exited)
        await asyncio.wait([*(r.eof for r in readers), feeder], timeout=PIPE_GRACE)
        for reader in readers:
            reader.close()
    return ProcessExit(returncode=process.returncode, timed_out=timed_out)
