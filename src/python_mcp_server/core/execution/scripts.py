"""Scripts: save them under scripts/, run them as a subprocess or inside a session's kernel.

Subprocess mode runs the session's interpreter (the one its kernel runs) in the workspace,
with the kernels' allow-listed environment, the arguments in ``sys.argv`` and
``input_data`` on stdin; at the timeout the script and its children are killed. Kernel
mode runs ``%run`` in the session through the execution pipeline, so the script's
variables stay in the session and the execution hooks (new files, history...) apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Literal

from python_mcp_server.core.execution.service import ExecutionRequest, ExecutionService
from python_mcp_server.core.sessions.manager import DEFAULT_SESSION, SessionManager
from python_mcp_server.core.sessions.owners import SessionSpec
from python_mcp_server.core.workspace.files import WorkspaceFiles
from python_mcp_server.core.workspace.new_files import NewFilesTracker
from python_mcp_server.core.workspace.outputs import OutputFiles, SpillFile
from python_mcp_server.errors import InvalidInputError, KernelStartError
from python_mcp_server.infra.kernels.base import KernelLaunchRequest
from python_mcp_server.infra.script_process import run_process
from python_mcp_server.models.files import SaveScriptResult, ScriptResult

SCRIPT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
ScriptMode = Literal["subprocess", "kernel"]


def _no_verdict() -> str | None:
    return None


@dataclass(frozen=True)
class PreparedScript:
    """What to execute for a script, and how to learn whether its confinement ended it."""

    argv: list[str]
    env: dict[str, str]
    #: Asked once the process has ended (before its confinement is released): why the
    #: confinement killed it (its memory limit), or None.
    verdict: Callable[[], str | None] = _no_verdict


#: (the kernels' launch request, script argv) -> a context holding what to execute while
#: it runs: where the launcher's sandbox, cgroups, limits and egress proxy are applied to
#: scripts (server/script_isolation.py), and released after.
ScriptCommand = Callable[
    [KernelLaunchRequest, list[str]], AbstractAsyncContextManager[PreparedScript]
]


@contextlib.asynccontextmanager
async def plain_command(
    request: KernelLaunchRequest, argv: list[str]
) -> AsyncIterator[PreparedScript]:
    """No isolation beyond the kernels' environment."""
    yield PreparedScript(list(argv), dict(request.env))


@dataclass(frozen=True)
class ScriptsConfig:
    """Defaults of run_script."""

    default_timeout: float
    max_output_chars: int
    #: Where spill files go (outputs/, capped per call and per session).
    outputs: OutputFiles


class CapturedOutput:
    """One output stream of a script: the head in memory, everything (capped) in a spill
    file under outputs/ past the in-memory cap."""

    def __init__(self, cap: int, spill: SpillFile) -> None:
        self._cap = cap
        self._head = bytearray()
        self.spill = spill
        self.truncated = False
        self.total = 0

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if not self.truncated and len(self._head) + len(chunk) <= self._cap:
            self._head += chunk
            return
        if not self.truncated:
            self.truncated = True
            self.spill.write(bytes(self._head))
            self._head += chunk[: max(self._cap - len(self._head), 0)]
        self.spill.write(chunk)

    def text(self) -> str:
        return bytes(self._head).decode("utf-8", errors="replace")

    def close(self) -> str | None:
        return self.spill.close() if self.truncated else None


def script_name(name: str) -> str:
    """Validate a script name; ``.py`` is added when missing."""
    stem = name[:-3] if name.endswith(".py") else name
    if not SCRIPT_NAME.match(stem):
        raise InvalidInputError(
            f"script name {name!r} is not valid: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter, digit or '_' (no folders)"
        )
    return f"{stem}.py"


def kernel_run_code(path: str, args: list[str]) -> str:
    """Code that runs a workspace script with %run, arguments passed through untouched."""
    first = path if not path.startswith("-") else f"./{path}"
    line = shlex.join([first, *args])
    # run_line_magic expands $name and {expr}; doubled, they come through literally.
    line = line.replace("$", "$$").replace("{", "{{").replace("}", "}}")
    return f"get_ipython().run_line_magic('run', {line!r})"


class ScriptRunner:
    """save_script and run_script."""

    def __init__(
        self,
        files: WorkspaceFiles,
        sessions: SessionManager,
        execution: ExecutionService,
        tracker: NewFilesTracker,
        config: ScriptsConfig,
        command: ScriptCommand = plain_command,
    ) -> None:
        self._command = command
        self._files = files
        self._sessions = sessions
        self._execution = execution
        self._tracker = tracker
        self._config = config

    def save(self, name: str, content: str) -> SaveScriptResult:
        filename = script_name(name)
        written = self._files.write(f"scripts/{filename}", content)
        syntax_error = None
        try:
            compile(content, filename, "exec")
        except SyntaxError as exc:
            syntax_error = f"line {exc.lineno}: {exc.msg}"
        except ValueError as exc:
            syntax_error = str(exc)
        return SaveScriptResult(
            path=written.path, size=written.size, created=written.created, syntax_error=syntax_error
        )

    async def run(
        self,
        path: str,
        *,
        args: list[str] | None = None,
        input_data: str | None = None,
        timeout: float | None = None,
        session_id: SessionSpec = None,
        mode: ScriptMode = "subprocess",
    ) -> ScriptResult:
        arguments = list(args or [])
        if any("\0" in arg for arg in arguments):
            raise InvalidInputError("args must not contain NUL bytes")
        workspace = self._files.workspace
        target = workspace.resolve(path)
        fd, _ = workspace.open_file(target)  # a regular, singly linked file in the workspace
        os.close(fd)
        if mode == "kernel":  # absolute: the kernel's code may have changed its folder
            return await self._run_in_kernel(
                target.relative, arguments, input_data, timeout, session_id
            )
        return await self._run_subprocess(
            target.relative,
            arguments,
            input_data,
            timeout or self._config.default_timeout,
            session_id,
        )

    async def _run_in_kernel(
        self,
        path: str,
        args: list[str],
        input_data: str | None,
        timeout: float | None,
        session_id: SessionSpec,
    ) -> ScriptResult:
        lines = input_data.splitlines() if input_data is not None else None
        request = ExecutionRequest(
            code=kernel_run_code(str(self._files.workspace.root / path), args),
            session_id=session_id,
            timeout=timeout,
            input_data=lines,
            # How a notebook of the session shows it: workspace paths, no server paths.
            notes={
                "notebook_origin": f"*Script run in the kernel:* `{path}`",
                "notebook_source": f"%run {shlex.join([path, *args])}",
            },
        )
        outcome = await self._execution.run(request)
        result = outcome.result
        error = result.error
        if error is not None:  # %run shows the script's exception; the cell itself succeeds
            root = f"{self._files.workspace.root}/"
            error = error.model_copy(
                update={
                    "evalue": error.evalue.replace(root, ""),
                    "traceback": [line.replace(root, "") for line in error.traceback],
                }
            )
        return ScriptResult(
            path=path,
            mode="kernel",
            status="error" if error is not None and result.status == "ok" else result.status,
            stdout=result.stdout,
            stderr=result.stderr,
            timed_out=result.status == "timeout",
            new_files=result.new_files,
            execution_time=result.execution_time,
            session_id=result.session_id,
            error=error,
            truncated=result.truncated,
            stdout_path=result.stdout_path,
            stderr_path=result.stderr_path,
            message=result.message,
        )

    def _session_venv(self, session_id: SessionSpec) -> tuple[str, str | None]:
        ref = self._sessions.resolve(session_id)
        name = self._sessions.resolve_id(ref)
        if ref in self._sessions:
            return name, self._sessions.get(ref).venv_name
        if name == DEFAULT_SESSION:
            return name, None
        self._sessions.get(ref)  # raises SESSION_NOT_FOUND
        return name, None  # pragma: no cover - get() raised

    async def _run_subprocess(
        self,
        path: str,
        args: list[str],
        input_data: str | None,
        timeout: float,
        session_id: SessionSpec,
    ) -> ScriptResult:
        name, venv = self._session_venv(session_id)
        ref = self._sessions.resolve(session_id)
        network = self._sessions.get(ref).network if ref in self._sessions else None
        launch = self._sessions.factory.session_request(venv, name, "script", network)
        run_id = uuid.uuid4().hex[:12]
        files = self._config.outputs
        budget = files.budget(self._sessions.get(name) if name in self._sessions else None)
        cap = self._config.max_output_chars
        out = CapturedOutput(cap, SpillFile(files, f"{run_id}-script-stdout.txt", budget))
        err = CapturedOutput(cap, SpillFile(files, f"{run_id}-script-stderr.txt", budget))
        mark = await asyncio.to_thread(self._tracker.mark)
        started = time.perf_counter()
        try:
            async with self._command(launch, [launch.python, path, *args]) as prepared:
                ended = await run_process(
                    prepared.argv,
                    cwd=launch.cwd,
                    env=prepared.env,
                    stdin_data=input_data.encode("utf-8") if input_data is not None else None,
                    timeout=timeout,
                    on_stdout=out.write,
                    on_stderr=err.write,
                )
                killed = prepared.verdict()
        except OSError as exc:
            raise KernelStartError(
                f"could not start the session's interpreter: {exc.strerror}"
            ) from None
        finally:
            relative = [out.close(), err.close()]
        elapsed = round(time.perf_counter() - started, 6)
        new_files = await asyncio.to_thread(self._tracker.changed_since, mark)
        status: Literal["ok", "error", "timeout"] = (
            "timeout" if ended.timed_out else "ok" if ended.returncode == 0 else "error"
        )
        notes = []
        if killed is not None:  # even when the script outlived its killed child
            status = "timeout" if ended.timed_out else "error"
            notes.append(killed)
        if ended.timed_out:
            notes.append(
                f"the script ran longer than {timeout:g} s and was killed with its children"
            )
        if out.truncated or err.truncated:
            spilled = ", ".join(p for p in relative if p)
            where = f"; the full text is in {spilled}" if spilled else ""
            notes.append(f"output was longer than the limit and was cut{where}")
        notes.extend(note for s in (out, err) if (note := s.spill.note()))
        return ScriptResult(
            path=path,
            mode="subprocess",
            status=status,
            returncode=ended.returncode,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=ended.timed_out,
            new_files=new_files,
            execution_time=elapsed,
            session_id=name,
            truncated=out.truncated or err.truncated,
            stdout_path=relative[0],
            stderr_path=relative[1],
            message="; ".join(notes) or None,
        )
