"""Wire models of introspection: code_completion, inspect_object, list_variables."""

from __future__ import annotations

from pydantic import Field

from python_mcp_server.models.wire import WireModel


class CompletionType(WireModel):
    """What the kernel (jedi) knows about one completion."""

    text: str = Field(description="The completion text.")
    type: str | None = Field(None, description="Kind: function, module, instance, keyword...")
    signature: str | None = Field(None, description="Call signature of functions, when known.")
    start: int | None = Field(None, description="Start of the text this completion replaces.")
    end: int | None = Field(None, description="End of the text this completion replaces.")


class CompletionResult(WireModel):
    """Completions at the cursor, as the session's kernel computes them."""

    matches: list[str] = Field(description="Candidate texts, best first.")
    cursor_start: int = Field(description="Start of the text the matches replace.")
    cursor_end: int = Field(description="End of the text the matches replace.")
    types: list[CompletionType] = Field(
        default_factory=list,
        description="Kind and signature per match, where the kernel gives them.",
    )
    session_id: str


class InspectionResult(WireModel):
    """Documentation of the object at the cursor."""

    found: bool = Field(description="Whether the kernel found an object to describe.")
    text: str = Field("", description="Plain-text documentation (signature, docstring, type).")
    session_id: str


class VariableInfo(WireModel):
    """One variable of the user's namespace."""

    name: str
    type: str = Field(description="Type name, with its module unless builtin or user-defined.")
    repr: str = Field(description="Short repr, at most 200 characters.")
    shape: list[int] | None = Field(None, description="Shape of arrays and data frames.")
    length: int | None = Field(None, description="len() of sized objects.")


class VariableList(WireModel):
    """The user's variables, without modules, library functions and IPython internals."""

    variables: list[VariableInfo]
    total: int = Field(description="How many user variables exist.")
    truncated: bool = Field(False, description="Whether only the first part is listed.")
    session_id: str
