"""Wire models of the advisory code-safety check: what check_code_safety returns."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from python_mcp_server.models.wire import WireModel

Severity = Literal["low", "medium", "high"]
Category = Literal["dangerous_call", "dangerous_module", "obfuscation", "syntax"]


class SafetyWarning(WireModel):
    """One finding of the safety check, at a place in the code."""

    line: int = Field(description="1-based line of the finding.")
    col: int = Field(description="0-based column of the finding.")
    category: Category = Field(
        description="dangerous_call, dangerous_module, obfuscation or syntax."
    )
    message: str = Field(description="What was found and why it matters.")
    severity: Severity = Field(description="low, medium or high; high makes the code unsafe.")


class SafetyCheckResult(WireModel):
    """The outcome of check_code_safety. Advisory: the kernel sandbox is the protection."""

    is_safe: bool = Field(description="False when any finding has severity high.")
    warnings: list[SafetyWarning] = Field(default_factory=list)
    mode: Literal["off", "warn", "block"] = Field(
        description="The server's MCP_SAFETY_MODE: what run_python_code does with findings."
    )
    advisory: str = Field(
        "This check reads the code's syntax tree; it cannot prove code safe. The kernel "
        "sandbox and limits are the protection.",
        description="A reminder of what this check is worth.",
    )
