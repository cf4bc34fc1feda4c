"""Helpers shared by tests: process checks and tool-call shortcuts."""

from __future__ import annotations

import asyncio
import functools
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from fastmcp import Client
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from python_mcp_server.core.sessions.session import KernelSession
from python_mcp_server.models.execution import ExecutionResult
from python_mcp_server.models.files import ReadFileResult, ScriptResult
from python_mcp_server.models.wire import WireModel
from python_mcp_server.server.app import build_server
from python_mcp_server.server.toolsets import TOOLSETS
from python_mcp_server.settings import Settings

#: A cell that catches every KeyboardInterrupt: only a kernel restart stops it.
SWALLOWS_INTERRUPTS = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.05)\n"
    "    except KeyboardInterrupt:\n"
    "        pass\n"
)


def kernel_children() -> set[int]:
    """Pids of ipykernel processes started by this test process."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                found.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """Wait for processes to end; return the ones still alive."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return {p.pid for p in alive if p.status() != psutil.STATUS_ZOMBIE}


def leak_report(pids: set[int], since: float) -> str:
    """What a leaked process is, for the failure message: age relative to ``since`` (the
    fixture's start, so a process started after the server stopped shows it), parent,
    state and the head of its command line."""
    lines = []
    for pid in sorted(pids):
        try:
            proc = psutil.Process(pid)
            started = proc.create_time() - since
            lines.append(
                f"{pid}: started {started:+.1f}s, parent {proc.ppid()}, {proc.status()}, "
                f"{' '.join(proc.cmdline())[:160]}"
            )
        except psutil.Error:
            lines.append(f"{pid}: gone")
    return "; ".join(lines)


#: Every toolset but compat (whose tools replace native ones of the same name).
NATIVE_TOOLSETS = ",".join(name for name in TOOLSETS if name != "compat")


def _as_dict(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: _as_dict(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [_as_dict(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_dict(item) for key, item in value.items()}
    return to_jsonable_python(value)


def result_model(tool: str) -> type[BaseModel] | None:
    """The model a tool's structured result is read with (None: a compat shape)."""
    return _result_models().get(tool)


@functools.cache
def _result_models() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {
        "run_python_code": ExecutionResult,
        "read_file": ReadFileResult,
        "run_script": ScriptResult,
    }
    # Its own state folder too: this may run outside a test (no XDG_STATE_HOME of the
    # test's), and the default one under ~/.local/state would outlive the run.
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as state:
        settings = Settings(workspace_dir=Path(tmp), state_dir=state, toolsets=NATIVE_TOOLSETS)
        server = build_server(settings)
        with ThreadPoolExecutor(1) as pool:  # callers run inside an event loop
            tools = pool.submit(asyncio.run, server.list_tools(run_middleware=False)).result()
    for tool in tools:
        kind = getattr(tool, "return_type", None)
        if isinstance(kind, type) and issubclass(kind, WireModel):
            models.setdefault(tool.name, kind)
    return models


def expand(tool: str, data: dict[str, Any]) -> dict[str, Any]:
    """A structured result with every field its model defines, as a typed client reads it.

    Results leave out fields that hold their default (models/wire.py); tests read them
    all, so the defaults are filled in from the tool's result model.
    """
    model = result_model(tool)
    if model is None:
        return dict(data)
    expanded = _as_dict(model.model_validate(data))
    assert isinstance(expanded, dict)
    return _overlay(expanded, data)


def _overlay(defaults: Any, sent: Any) -> Any:
    """``sent`` with the keys only ``defaults`` has added (fields a subclass adds stay)."""
    if isinstance(defaults, dict) and isinstance(sent, dict):
        merged = dict(defaults)
        for key, value in sent.items():
            merged[key] = _overlay(defaults.get(key), value)
        return merged
    if isinstance(defaults, list) and isinstance(sent, list) and len(defaults) == len(sent):
        return [_overlay(d, s) for d, s in zip(defaults, sent, strict=True)]
    return sent


async def call(client: Client[Any], tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed and return its structured result (defaults filled in)."""
    result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None
    return expand(tool, dict(result.structured_content))


async def run(client: Client[Any], code: str, **arguments: Any) -> dict[str, Any]:
    """Call run_python_code and return its structured result (defaults filled in)."""
    return await call(client, "run_python_code", code=code, **arguments)


async def tool_error(client: Client[Any], tool: str, arguments: dict[str, Any]) -> str:
    """Call a tool that must fail; return the error text (``CODE: message``)."""
    result = await client.call_tool(tool, arguments, raise_on_error=False)
    assert result.is_error, f"{tool} should have failed: {result}"
    text = result.content[0].text  # type: ignore[union-attr]
    assert isinstance(text, str)
    return text


async def wait_for_new_kernel(session: KernelSession, old_pid: int) -> None:
    """Wait until the session runs a live kernel other than ``old_pid``."""
    for _ in range(1200):
        if session.kernel_pid != old_pid and session.client.is_alive():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the kernel was not replaced")


async def wait_for_path(path: Path, timeout: float = 30.0) -> None:
    """Wait until ``path`` exists (a cell's sign that it has reached a point)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(path.exists):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_result_models()  # built at import, never inside a test's event loop
