"""Tracebacks shaped for a reader with little room: the user's frames, the error, no noise.

IPython sends a traceback as a list of chunks: a rule line, a header, one chunk per frame
(``Cell In[3], line 2`` with source context, or ``File /path/mod.py:12, in f(x)``), the
final ``Name: message`` line, and, for chained exceptions, each earlier exception first
with a sentence between them. ``shape_traceback`` keeps what helps to fix the code:

- the frames of the user's code (cells, and files in the workspace) with their context;
- library frames reduced to their location and the line that raised, and a run of more
  than two of them collapsed to the first, a count, and the last;
- of an earlier exception in a chain only its user frames and its error line;
- no rule lines or headers, no "Could not get source" lines, no ANSI codes;
- no server paths: library files are named from their package (``pandas/core/frame.py``),
  workspace files relative to the workspace, anything else by its file name.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from python_mcp_server.core.execution.service import ExecutionRequest
    from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_RULE = re.compile(r"^-{20,}$")
_HEADER = re.compile(r"^\S+\s{2,}Traceback \(most recent call last\)$")
_FILE_FRAME = re.compile(r"^File (?P<path>[^\n]+?):(?P<line>\d+)(?P<rest>, in [^\n]*)?$")
_CHAIN = ("The above exception was the direct cause", "During handling of the above")
_NO_SOURCE = "Could not get source"
_LIBRARY_DIRS = ("site-packages/", "dist-packages/")
_ARROW = re.compile(r"^\s*(-+>\s*\d+)\s+")


@dataclass(frozen=True)
class TracebackContext:
    """Where user code lives and which prefixes are the server's own, for path naming."""

    workspace: str
    #: Directories whose files are named relative to them (the stdlib, the interpreters).
    library_roots: tuple[str, ...] = ()


@dataclass
class _Frame:
    header: str
    body: list[str]
    user: bool


def traceback_context(workspace: Path) -> TracebackContext:
    """The context for kernels of this server: its workspace and its interpreters' roots."""
    stdlib = sysconfig.get_paths()["stdlib"]
    roots = sorted({stdlib, sys.prefix, sys.base_prefix}, key=len, reverse=True)
    return TracebackContext(workspace=str(workspace), library_roots=tuple(roots))


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def shape_traceback(lines: Sequence[str], context: TracebackContext) -> list[str]:
    """The shaped traceback chunks of one error (see the module docstring)."""
    segments: list[list[str]] = [[]]
    for raw in lines:
        chunk = strip_ansi(raw).strip("\n")
        if any(chunk.strip().startswith(marker) for marker in _CHAIN):
            segments.append([])
            continue
        if not chunk.strip() or _RULE.match(chunk.strip()) or _HEADER.match(chunk.strip()):
            continue
        segments[-1].append(chunk)
    segments = [segment for segment in segments if segment]
    shaped: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        frames, tail = _split(segment, context)
        if not last:
            frames = [frame for frame in frames if frame.user]
        shaped.extend(_render(frames))
        if tail:
            shaped.append(tail if last else f"(chained from {tail})")
    return shaped


def _split(segment: list[str], context: TracebackContext) -> tuple[list[_Frame], str]:
    """A segment's frames and its final error line."""
    frames: list[_Frame] = []
    tail: list[str] = []
    for chunk in segment:
        first, _, rest = chunk.partition("\n")
        body = [line for line in rest.split("\n") if line.strip() and _NO_SOURCE not in line]
        if first.startswith(("Cell In[", "Input In [")):
            frames.append(_Frame(first, body, user=True))
            continue
        match = _FILE_FRAME.match(first)
        if match is None:
            tail.append(chunk)
            continue
        path, user = _name(match["path"], context)
        header = f"File {path}:{match['line']}{match['rest'] or ''}"
        frames.append(_Frame(header, body, user=user))
    return frames, "\n".join(tail).strip()


def _name(path: str, context: TracebackContext) -> tuple[str, bool]:
    """A path as the reader sees it, and whether it is the user's."""
    workspace = context.workspace.rstrip("/") + "/"
    if path.startswith(workspace):
        return path[len(workspace) :], True
    for marker in _LIBRARY_DIRS:
        if marker in path:
            return path.split(marker, 1)[1], False
    for root in context.library_roots:
        root = root.rstrip("/") + "/"
        if path.startswith(root):
            return path[len(root) :], False
    if path.startswith("/"):
        return PurePosixPath(path).name, False
    return path, False


def _render(frames: list[_Frame]) -> list[str]:
    out: list[str] = []
    run: list[_Frame] = []

    def flush() -> None:
        if len(run) > 2:
            out.append(_library(run[0]))
            out.append(f"... {len(run) - 2} more library frame(s) ...")
            out.append(_library(run[-1]))
        else:
            out.extend(_library(frame) for frame in run)
        run.clear()

    for frame in frames:
        if frame.user:
            flush()
            out.append("\n".join([frame.header, *frame.body]))
        else:
            run.append(frame)
    flush()
    return out


def _library(frame: _Frame) -> str:
    """A library frame: its location and the line that raised (marked by an arrow)."""
    raised = [_ARROW.sub(r"\1 ", line) for line in frame.body if _ARROW.match(line)]
    return "\n".join([frame.header, *raised[:1]])


class TracebackHook:
    """ExecutionHook: shapes the traceback of a failed execution before anyone reads it."""

    def __init__(self, context: TracebackContext) -> None:
        self._context = context

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        return None

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        error = outcome.result.error
        if error is not None and error.traceback:
            error.traceback = shape_traceback(error.traceback, self._context)
