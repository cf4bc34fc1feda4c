"""Run a command (uv, pip, a venv's python) to completion without blocking the event loop.

The command leads its own process group, so a timeout or a cancelled call ends it and
everything it started (build backends, compilers). Failures to start and timeouts become
the project's errors; a non-zero exit is a result, for the caller to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.errors import ServerError

#: Seconds a process group has to exit after SIGTERM before it gets SIGKILL.
TERMINATE_GRACE = 2.0
#: Characters of each stream kept (the tail): installer chatter can be long.
MAX_STREAM_CHARS = 200_000


class CommandError(ServerError):
    """A command could not be run to completion."""


class CommandStartError(CommandError):
    """The program could not be started (missing, not executable, bad cwd)."""


class CommandTimeoutError(CommandError):
    """The command ran longer than allowed and was ended with its process group."""

    def __init__(self, message: str, *, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass(frozen=True)
class CommandResult:
    """A finished command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _end_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period, reap the leader."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), TERMINATE_GRACE)
    except asyncio.TimeoutError:
        pass
    # Members of the group may outlive the leader: kill whatever is left.
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _decode(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return text[-MAX_STREAM_CHARS:]


async def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> CommandResult:
    """Run ``argv`` (no shell) and return its exit code and output.

    Raises ``CommandStartError`` when the program cannot start and ``CommandTimeoutError``
    after ending the whole process group when it runs longer than ``timeout`` seconds.
    A cancelled call ends the process group too.
    """
    started = time.perf_counter()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd is not None else None,
            start_new_session=True,
        )
    except OSError as exc:
        raise CommandStartError(
            f"could not start {Path(argv[0]).name}: {exc.strerror or exc}"
        ) from exc
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError as exc:
        await asyncio.shield(_end_group(process))
        raise CommandTimeoutError(
            f"{Path(argv[0]).name} did not finish within {timeout:g} s and was stopped",
            timeout=timeout,
        ) from exc
    except BaseException:
        await asyncio.shield(_end_group(process))
        raise
    return CommandResult(
        argv=tuple(argv),
        returncode=process.returncode if process.returncode is not None else -1,
        stdout=_decode(stdout),
        stderr=_decode(stderr),
        duration=time.perf_counter() - started,
    )
