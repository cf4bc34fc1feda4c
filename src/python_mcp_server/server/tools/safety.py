"""Safety tools: check_code_safety, the advisory check run_python_code also applies."""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from pydantic import Field

from python_mcp_server.core.safety.checker import check_code_safety as check
from python_mcp_server.errors import InvalidInputError
from python_mcp_server.models.safety import SafetyCheckResult
from python_mcp_server.server.services import Services
from python_mcp_server.server.tools.annotations import READ_ONLY

TAGS = {"safety"}


def register(mcp: FastMCP, services: Services) -> None:
    mode = services.settings.safety_mode

    @mcp.tool(tags=TAGS, annotations=READ_ONLY)
    async def check_code_safety(
        code: Annotated[str, Field(description="Python source (IPython syntax allowed).")],
    ) -> SafetyCheckResult:
        """Check code for dangerous calls, risky modules and obfuscation, without running it.

        Advisory: it reads the syntax tree and cannot prove code harmless; the kernel
        sandbox is the protection. is_safe is False when a finding has severity high; in
        block mode (MCP_SAFETY_MODE) run_python_code refuses such code with UNSAFE_CODE.
        """
        if not code.strip():
            raise InvalidInputError("code is empty")
        report = check(code)
        return SafetyCheckResult(is_safe=report.is_safe, warnings=report.warnings, mode=mode)
