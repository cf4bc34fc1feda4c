"""Compat tools: the names, arguments and result shapes of the servers this one replaces.

Opt-in (``--toolsets default,compat`` or ``all``). Each tool is a thin adapter over the
native core (see ``core/compat.py``). Where a native tool of the same name exists, the
compat variant replaces it and accepts both argument styles (``venvName`` and
``venv_name``), so this group is registered after every other (``LATE_TOOLSETS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from fastmcp import Context, FastMCP
from fastmcp.tools.base import ToolResult
from mcp_types import ContentBlock, TextContent, ToolAnnotations
from pydantic import Field

from python_mcp_server.core.compat import (
    dependencies_text,
    execute_python_text,
    session_for_venv,
    to_execute_python,
    to_execute_python_code,
)
from python_mcp_server.core.execution.scripts import kernel_run_code
from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.owners import SessionRef
from python_mcp_server.core.sessions.session import ExecutionOutcome
from python_mcp_server.errors import InvalidInputError
from python_mcp_server.models.compat import ExecutePythonCodeResult, ExecutePythonResult
from python_mcp_server.server.approval import approval_for
from python_mcp_server.server.disconnects import until_caller_gone
from python_mcp_server.server.inline_images import InlineLimits, image_blocks, plan_inline
from python_mcp_server.server.principals import current_principal, session_ref
from python_mcp_server.server.resources import outcome_images
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.annotations import ACTS, ADDS, READ_ONLY, REPLACES, SETS
from python_mcp_server.server.tools.files import script_source

TAGS = {"compat"}

#: The effect of each compat tool (the same as its native counterpart's).
COMPAT_ANNOTATIONS: dict[str, ToolAnnotations] = {
    "execute_python": ACTS,
    "execute_python_code": ACTS,
    "install_packages": SETS,
    "install_python_package": SETS,
    "uninstall_packages": REPLACES,
    "list_packages": READ_ONLY,
    "list_installed_packages": READ_ONLY,
    "list_venvs": READ_ONLY,
    "create_venv": ADDS,
    "delete_venv": REPLACES,
    "set_venv_description": SETS,
    "health_check": READ_ONLY,
    "get_execution_history": READ_ONLY,
    "clear_execution_history": REPLACES,
    "check_code_safety": READ_ONLY,
}
F = TypeVar("F", bound=Callable[..., Any])


def compat_tool(mcp: FastMCP, **options: Any) -> Callable[[F], F]:
    """``@mcp.tool`` that first removes a native tool of the same name (the replacement)."""

    def decorate(fn: F) -> F:
        with contextlib.suppress(KeyError):
            mcp.local_provider.remove_tool(fn.__name__)
        options.setdefault("annotations", COMPAT_ANNOTATIONS[fn.__name__])
        mcp.tool(tags=TAGS, **options)(fn)
        return fn

    return decorate


def _images(outcome: ExecutionOutcome, services: Services) -> list[ContentBlock]:
    """Inline copies of the images (small enough); blocking, run in a thread."""
    settings = services.settings
    limits = InlineLimits(settings.max_image_inline_bytes, settings.max_image_attach_bytes)
    return image_blocks(plan_inline(outcome_images(outcome, services.files.workspace), limits))


def script_code(services: Services, path: str) -> str:
    """Code that runs a workspace script in the kernel; the path goes through the resolver."""
    workspace = services.files.workspace
    target = workspace.resolve(path)
    fd, _ = workspace.open_file(target)  # a regular, singly linked file in the workspace
    os.close(fd)
    return kernel_run_code(target.relative, [])


def _now() -> datetime:
    return datetime.now(timezone.utc)


def register(mcp: FastMCP, services: Services) -> None:
    """Every compat tool: execution here, the rest in compat_packages and compat_status."""
    from python_mcp_server.server.tools import compat_packages, compat_status

    register_execution(mcp, services)
    compat_packages.register(mcp, services)
    compat_status.register(mcp, services)


def register_execution(mcp: FastMCP, services: Services) -> None:
    execution = services.execution
    settings = services.settings

    @compat_tool(mcp, output_schema=ExecutePythonResult.model_json_schema())
    async def execute_python(
        ctx: Context,
        code: Annotated[str | None, Field(description="Python code to execute.")] = None,
        scriptPath: Annotated[
            str | None,
            Field(description="A workspace script to run instead of code (run with %run)."),
        ] = None,
        inputData: Annotated[
            list[str] | None, Field(description="Lines answering input(), in order.")
        ] = None,
        venvName: Annotated[
            str | None,
            Field(description="Environment to run in; default: the active session's."),
        ] = None,
    ) -> ToolResult:
        """Execute Python code and return its output (MCP Python Executor compatible).

        Runs in a persistent kernel: variables survive between calls. A failure comes back
        as an error result whose text starts with "Error executing Python code:" and whose
        structured `error.code` is PYTHON_ERROR, EXECUTION_TIMEOUT or MEMORY_LIMIT_EXCEEDED.
        """
        if (code is None) == (scriptPath is None):
            raise InvalidInputError("give either code or scriptPath (one of them)")
        checked = code
        if scriptPath is not None:
            checked = await asyncio.to_thread(script_source, services.files, scriptPath)
            code = await asyncio.to_thread(script_code, services, scriptPath)
        if code is None or checked is None or not code.strip():
            raise InvalidInputError("code is empty")
        approval = await approval_for(
            ctx, checked, settings.safety_mode, settings.safety_ask_fallback
        )
        if approval.ask is not None:
            return approval.ask  # the client asks the user and calls again
        owner = current_principal()
        session_id = await session_for_venv(
            services.sessions, venvName, settings.default_venv_name, owner
        )

        async def progress(elapsed: float, recent: str) -> None:
            await ctx.report_progress(elapsed, None, recent or f"running {elapsed:.1f} s")

        outcome = await until_caller_gone(
            execution.run(
                ExecutionRequest(
                    code=code, session_id=SessionRef(owner, session_id), input_data=inputData
                ),
                progress=progress,
            )
        )
        compat = to_execute_python(outcome.result, venvName or settings.default_venv_name)
        content: list[ContentBlock] = [TextContent(type="text", text=execute_python_text(compat))]
        return ToolResult(
            content=content + await asyncio.to_thread(_images, outcome, services),
            structured_content=compat.model_dump(mode="json"),
            is_error=not compat.success,
        )

    @compat_tool(mcp, output_schema=ExecutePythonCodeResult.model_json_schema())
    async def execute_python_code(
        code: Annotated[str, Field(description="Python code to execute.")],
        ctx: Context,
        timeout: Annotated[
            float | None, Field(gt=0, le=86400, description="Seconds; default 30.")
        ] = None,
        allow_unsafe: Annotated[
            bool, Field(description="Run even when the safety check blocks the code.")
        ] = False,
    ) -> ExecutePythonCodeResult | ToolResult:
        """Execute Python code (Python executor compatible): stdout, stderr, return_code.

        Runs in the active session's persistent kernel. A Python error is success=false with
        the traceback in stderr and return_code 1; a timeout is return_code 124.
        """
        if not code.strip():
            raise InvalidInputError("code is empty")
        approval = await approval_for(ctx, code, settings.safety_mode, settings.safety_ask_fallback)
        if approval.ask is not None:
            return approval.ask  # the client asks the user and calls again

        async def progress(elapsed: float, recent: str) -> None:
            await ctx.report_progress(elapsed, None, recent or f"running {elapsed:.1f} s")

        executed_at = _now()
        outcome = await until_caller_gone(
            execution.run(
                ExecutionRequest(
                    code=code,
                    session_id=session_ref(None),
                    timeout=timeout,
                    allow_unsafe=allow_unsafe,
                ),
                progress=progress,
            )
        )
        return to_execute_python_code(
            outcome.result,
            executed_at=executed_at,
            completed_at=_now(),
            dependencies_info=dependencies_text(outcome.result.dependencies_info),
        )
