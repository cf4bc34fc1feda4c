"""Introspection tools (execution group): code_completion, inspect_object, list_variables."""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.models.introspection import CompletionResult, InspectionResult, VariableList
from python_mcp_server.server.principals import session_ref
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.annotations import READ_ONLY

TAGS = {"execution"}  # code_completion and inspect_object: "introspection"

CodeArg = Annotated[str, Field(max_length=100_000, description="The code around the cursor.")]
CursorArg = Annotated[
    int | None,
    Field(ge=0, description="Cursor offset in characters; default: the end of the code."),
]
SessionArg = Annotated[
    str | None, Field(description="Session to ask; default: the active session.")
]


def register(mcp: FastMCP, services: Services) -> None:
    introspection = services.introspection

    @mcp.tool(tags={"introspection"}, annotations=READ_ONLY)
    async def code_completion(
        code: CodeArg, cursor_pos: CursorArg = None, session_id: SessionArg = None
    ) -> CompletionResult:
        """Complete the name at the cursor using the session's live variables (jedi).

        Returns matches, the span they replace (cursor_start, cursor_end) and, where the
        kernel gives them, each match's type and signature.
        """
        return await introspection.complete(code, cursor_pos, session_ref(session_id))

    @mcp.tool(tags={"introspection"}, annotations=READ_ONLY)
    async def inspect_object(
        code: CodeArg,
        cursor_pos: CursorArg = None,
        detail_level: Annotated[
            int, Field(ge=0, le=1, description="0: signature and docstring; 1: also source.")
        ] = 0,
        session_id: SessionArg = None,
    ) -> InspectionResult:
        """Documentation of the object at the cursor (signature, docstring, type), as plain
        text."""
        return await introspection.inspect(code, cursor_pos, detail_level, session_ref(session_id))

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def list_variables(session_id: SessionArg = None) -> VariableList:
        """The session's variables: name, type, short repr, shape or length.

        Modules, functions and classes imported from libraries, and IPython's own names
        are left out; listing leaves nothing behind in the session.
        """
        return await introspection.variables(session_ref(session_id))
