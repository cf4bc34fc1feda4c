"""File tools: list_files, read_file, write_file, delete_file, save_script, run_script,
get_workspace_info. Every path goes through the workspace resolver (core/workspace/resolver.py)."""

from __future__ import annotations

import base64
from functools import partial
from typing import Annotated, Literal

import anyio
from fastmcp import Context, FastMCP
from fastmcp.tools.base import ToolResult
from mcp_types import ContentBlock, ImageContent, TextContent
from pydantic import Field

from python_mcp_server.core.safety.checker import check_code_safety, findings_summary
from python_mcp_server.core.workspace.files import WorkspaceFiles
from python_mcp_server.errors import UnsafeCodeError
from python_mcp_server.models.files import (
    DeleteFileResult,
    FileList,
    ReadFileResult,
    SaveScriptResult,
    ScriptResult,
    WorkspaceInfo,
    WriteFileResult,
)
from python_mcp_server.server.approval import Approval, ask_approval
from python_mcp_server.server.inline_images import inline_copy
from python_mcp_server.server.principals import session_ref
from python_mcp_server.server.services import Services
from python_mcp_server.server.tasks import task_tool
from python_mcp_server.server.tools.annotations import ACTS, READ_ONLY, REPLACES

TAGS = {"files"}

PathArg = Annotated[
    str, Field(description="Path relative to the workspace (absolute paths inside it work too).")
]


def script_source(files: WorkspaceFiles, path: str) -> str:
    """A workspace script's text, read through the resolver (for the safety check)."""
    workspace = files.workspace
    data, _ = workspace.read_bytes(workspace.resolve(path))
    return data.decode("utf-8", errors="replace")


def refuse_flagged_script(source: str) -> None:
    """Block mode: a script the safety check flags is refused (run_script has no
    allow_unsafe; run the code with run_python_code(allow_unsafe=True) where permitted)."""
    report = check_code_safety(source)
    if not report.is_safe:
        raise UnsafeCodeError(
            "the script was refused by the safety check (MCP_SAFETY_MODE=block): "
            f"{findings_summary(report)}"
        )


def register(mcp: FastMCP, services: Services) -> None:
    files = services.files
    scripts = services.scripts
    tracker = services.new_files
    budget = services.result_budget
    inline_bytes = services.settings.max_image_inline_bytes

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def list_files(
        path: PathArg = ".",
        recursive: Annotated[bool, Field(description="Descend into folders.")] = False,
        max_depth: Annotated[
            int, Field(ge=1, le=20, description="Levels to descend when recursive.")
        ] = 3,
        pattern: Annotated[
            str | None, Field(description="Shell pattern the names must match, e.g. '*.csv'.")
        ] = None,
    ) -> FileList:
        """List a workspace folder: entries (path, name, type, size, modified) and a tree.

        Symlinks are listed, not followed; the server's private state folder is hidden.
        """
        call = partial(files.list, path, recursive=recursive, max_depth=max_depth, pattern=pattern)
        return await anyio.to_thread.run_sync(call)

    @mcp.tool(tags=TAGS, annotations=READ_ONLY, output_schema=ReadFileResult.model_json_schema())
    async def read_file(
        path: PathArg,
        offset: Annotated[int, Field(ge=0, description="First byte to read.")] = 0,
        max_bytes: Annotated[
            int | None, Field(ge=1, description="Most bytes to read; default: the whole file.")
        ] = None,
    ) -> ToolResult:
        """Read a workspace file: UTF-8 text, or base64 for binary files (an image is also
        attached as image content, downscaled when large). Files over MCP_MAX_FILE_BYTES
        are read in parts with offset and max_bytes; a result over MCP_MAX_RESULT_CHARS
        keeps the head and tail and links the file."""
        read = await anyio.to_thread.run_sync(
            partial(files.read, path, offset=offset, max_bytes=max_bytes)
        )
        result = read.result
        image = read.image

        def finish() -> ToolResult:
            content: list[ContentBlock] = [TextContent(type="text", text=result.model_dump_json())]
            copy = inline_copy(image, result.mime_type, inline_bytes) if image else None
            if copy is not None:
                content.append(
                    ImageContent(
                        type="image",
                        data=base64.b64encode(copy.data).decode("ascii"),
                        mime_type=copy.mime_type,
                    )
                )
            whole = ToolResult(content=content, structured_content=result.model_dump(mode="json"))
            # Over the result budget, the link is to the file itself: it is the whole.
            return budget.fit(whole, name="read_file", whole=result.path)

        return await anyio.to_thread.run_sync(finish)

    @mcp.tool(tags=TAGS, annotations=REPLACES)
    async def write_file(
        path: PathArg,
        content: Annotated[str, Field(description="Text, or base64 when binary_base64.")],
        binary_base64: Annotated[
            bool, Field(description="content is base64 of the bytes to write.")
        ] = False,
        overwrite: Annotated[
            bool, Field(description="Replace an existing file (else FILE_EXISTS).")
        ] = True,
    ) -> WriteFileResult:
        """Write a workspace file atomically (temporary file, then rename); folders on the
        way are created."""
        call = partial(files.write, path, content, binary_base64=binary_base64, overwrite=overwrite)
        return await anyio.to_thread.run_sync(call)

    @mcp.tool(tags=TAGS, annotations=REPLACES)
    async def delete_file(
        path: PathArg,
        recursive: Annotated[
            bool, Field(description="Also delete a folder with everything in it.")
        ] = False,
    ) -> DeleteFileResult:
        """Delete a file, a symlink (not its target) or, with recursive, a folder."""
        return await anyio.to_thread.run_sync(partial(files.delete, path, recursive=recursive))

    @mcp.tool(tags={"scripts"}, annotations=REPLACES)
    async def save_script(
        name: Annotated[
            str, Field(description="Script name, e.g. 'clean_data' or 'clean_data.py'.")
        ],
        content: Annotated[str, Field(description="Python source.")],
    ) -> SaveScriptResult:
        """Save a Python script as scripts/<name>.py (replacing one of the same name) and
        say whether it compiles. Run it with run_script."""
        return await anyio.to_thread.run_sync(partial(scripts.save, name, content))

    @task_tool(
        mcp,
        budget=services.result_budget,
        tags={"scripts"},
        annotations=ACTS,
        output_schema=ScriptResult.model_json_schema(),
    )
    async def run_script(
        path: Annotated[str, Field(description="Workspace script, e.g. 'scripts/clean.py'.")],
        ctx: Context,
        args: Annotated[
            list[str] | None, Field(description="Arguments, seen by the script in sys.argv.")
        ] = None,
        input_data: Annotated[
            str | None,
            Field(description="Text on the script's stdin (kernel mode: lines for input())."),
        ] = None,
        timeout: Annotated[
            float | None,
            Field(gt=0, le=86400, description="Seconds before the script is stopped."),
        ] = None,
        session_id: Annotated[
            str | None,
            Field(description="Session whose interpreter (or kernel) runs it; default: active."),
        ] = None,
        mode: Annotated[
            Literal["subprocess", "kernel"],
            Field(
                description="subprocess: a separate process, killed with its children at "
                "the timeout; kernel: %run inside the session, its variables stay."
            ),
        ] = "subprocess",
    ) -> ScriptResult | ToolResult:
        """Run a workspace script; returns stdout, stderr, returncode and new files. A
        failing script is status "error", not a tool error."""
        settings = services.settings
        approval = Approval()
        if settings.safety_mode in ("ask", "block"):
            source = await anyio.to_thread.run_sync(partial(script_source, files, path))
            if settings.safety_mode == "block":
                refuse_flagged_script(source)
            else:
                approval = await ask_approval(ctx, source, settings.safety_ask_fallback)
            if approval.ask is not None:
                return approval.ask  # the client asks the user and calls again
        result = await scripts.run(
            path,
            args=args,
            input_data=input_data,
            timeout=timeout,
            session_id=session_ref(session_id),
            mode=mode,
        )
        if approval.note:
            said = result.message
            result.message = f"{approval.note}; {said}" if said else approval.note
        return result

    @mcp.tool(tags={"diagnostics"}, annotations=READ_ONLY)
    async def get_workspace_info() -> WorkspaceInfo:
        """The workspace at a glance: its folders (relative paths), file counts, sizes,
        free disk space and the file size limit."""
        return await anyio.to_thread.run_sync(partial(files.info, tracker.mode))
