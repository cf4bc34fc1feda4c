"""Execution tools: run_python_code. Its result is fitted into MCP_MAX_RESULT_CHARS here
(the whole saved as ``outputs/<execution id>-result-<random>.txt``)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastmcp import Context, FastMCP
from fastmcp.tools.base import ToolResult
from mcp_types import ContentBlock, TextContent
from pydantic import Field

from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.session import ExecutionOutcome
from python_mcp_server.core.workspace.resolver import Workspace
from python_mcp_server.errors import InvalidInputError
from python_mcp_server.models.execution import ExecutionResult
from python_mcp_server.server.approval import ask_approval
from python_mcp_server.server.disconnects import until_caller_gone
from python_mcp_server.server.inline_images import InlineLimits, image_blocks, plan_inline
from python_mcp_server.server.principals import session_ref
from python_mcp_server.server.resources import outcome_images, resource_links
from python_mcp_server.server.services import Services
from python_mcp_server.server.tasks import TaskProgress, asked_for_progress, task_tool
from python_mcp_server.server.tools.annotations import ACTS
from python_mcp_server.server.tools.execution_text import execution_text

TAGS = {"execution"}


def execution_tool_result(
    outcome: ExecutionOutcome, workspace: Workspace, limits: InlineLimits
) -> ToolResult:
    """Structured result (compact) plus its plain-text form, inline image copies (small
    enough, see server/inline_images.py) and resource links. Blocking: run in a thread."""
    result = outcome.result
    plan = plan_inline(outcome_images(outcome, workspace), limits)
    note = plan.note(limits)
    if note:
        result.message = f"{result.message}; {note}" if result.message else note
    content: list[ContentBlock] = [TextContent(type="text", text=execution_text(result))]
    content.extend(image_blocks(plan))
    content.extend(resource_links(outcome))
    return ToolResult(content=content, structured_content=result.model_dump(mode="json"))


def register(mcp: FastMCP, services: Services) -> None:
    execution = services.execution
    settings = services.settings
    budget = services.result_budget
    workspace = services.files.workspace
    inline_limits = InlineLimits(settings.max_image_inline_bytes, settings.max_image_attach_bytes)

    @task_tool(
        mcp,
        budget=services.result_budget,
        heartbeat=False,
        tags=TAGS,
        annotations=ACTS,
        output_schema=ExecutionResult.model_json_schema(),
    )
    async def run_python_code(
        code: Annotated[str, Field(description="Python source to run in the session's kernel.")],
        ctx: Context,
        session_id: Annotated[
            str | None, Field(description="Session to run in; default: the active session.")
        ] = None,
        timeout: Annotated[
            float | None,
            Field(gt=0, le=86400, description="Seconds before the code is interrupted."),
        ] = None,
        input_data: Annotated[
            list[str] | None,
            Field(description="Lines answering input()/getpass() in order; then EOFError."),
        ] = None,
        allow_unsafe: Annotated[
            bool,
            Field(
                description="Run code the safety check marks unsafe even in block mode; "
                "honoured only when the server permits it (MCP_ALLOW_UNSAFE)."
            ),
        ] = False,
    ) -> ToolResult:
        """Run Python in a persistent Jupyter kernel; variables survive between calls.

        Returns stdout, stderr, the last expression's value, rich outputs (images are saved
        under outputs/, linked, and attached inline as small copies) and, on failure, the
        exception. A Python exception is a successful call with status "error".
        """
        if not code.strip():
            raise InvalidInputError("code is empty")

        async def progress(elapsed: float, recent: str) -> None:
            await ctx.report_progress(elapsed, None, recent or f"running {elapsed:.1f} s")

        if ctx.is_background_task:  # a task: its status message shows the latest output
            progress = TaskProgress(ctx)
        note = None
        if settings.safety_mode == "ask":
            approval = await ask_approval(ctx, code, settings.safety_ask_fallback)
            if approval.ask is not None:
                return approval.ask  # the client asks the user and calls again
            note = approval.note
        request = ExecutionRequest(
            code=code,
            session_id=session_ref(session_id),
            timeout=timeout,
            input_data=input_data,
            allow_unsafe=allow_unsafe,
        )
        outcome = await until_caller_gone(
            execution.run(
                request,
                progress=progress if ctx.is_background_task or asked_for_progress(ctx) else None,
            )
        )
        if note:
            said = outcome.result.message
            outcome.result.message = f"{note}; {said}" if said else note
        name = f"{outcome.result.execution_id}-result"

        def fit(whole: ToolResult) -> ToolResult:
            fitted = budget.fit(whole, name=name)
            if fitted is not whole and isinstance(fitted.structured_content, dict):
                fitted.structured_content["truncated"] = True  # cut to fit the budget
            return fitted

        collected = outcome.collected
        if not collected.images and not collected.unattached:
            # No image to read or downscale: the result is built here, and a small one
            # (the usual case) is measured here too, without a hop to a worker thread.
            whole = execution_tool_result(outcome, workspace, inline_limits)
            if budget.fits_inline(whole):
                return whole
            return await anyio.to_thread.run_sync(fit, whole)
        return await anyio.to_thread.run_sync(
            lambda: fit(execution_tool_result(outcome, workspace, inline_limits))
        )
