"""Safety mode ``ask``: code the safety check flags runs only when the human approves.

The question goes to the user through elicitation. On the 2026 protocol (and inside a
task) the tool answers with an input-required result (SEP-2322) and the client calls again
with the answer; on the 2025 protocol the server asks with ``elicitation/create``. A
client that declared no elicitation capability cannot be asked: the configured fallback
(``MCP_SAFETY_ASK_FALLBACK``: ``block`` or ``warn``) applies, and the result says so.

Every tool that runs code the agent supplies asks: ``run_python_code`` (its code),
``run_script`` (the script's source), ``import_notebook`` (its code cells, as one) and the
compat execution tools.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import mcp_types
from fastmcp import Context
from fastmcp.tools.base import InputRequiredToolResult
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from python_mcp_server.core.safety.checker import SafetyReport, check_code_safety
from python_mcp_server.errors import UnsafeCodeError

#: The key of our one input request; the code's digest follows it, so an answer approves
#: exactly the code it was asked about (a script or notebook changed between the ask and
#: the repeated call is asked about again).
APPROVE_KEY = "approve_unsafe_code"
MAX_CODE_SHOWN = 1500


@dataclass(frozen=True)
class Approval:
    """What ``ask`` decided for one call: ``ask`` is an input-required result to return,
    else the code runs and ``note`` goes into the result's message."""

    ask: InputRequiredToolResult | None = None
    note: str | None = None


def client_can_elicit(ctx: Context) -> bool:
    """Whether the client declared the elicitation capability (per request on the 2026
    protocol, at the handshake before)."""
    request = ctx.request_context
    meta: Any = request.meta if request is not None else None
    declared = meta.get(CLIENT_CAPABILITIES_META_KEY) if meta else None
    if isinstance(declared, dict):
        return declared.get("elicitation") is not None
    try:
        capabilities = ctx.session.client_capabilities
    except (RuntimeError, AttributeError):
        return False
    return capabilities is not None and capabilities.elicitation is not None


def _question(code: str, report: SafetyReport) -> str:
    findings = "\n".join(
        f"- line {w.line}: {w.message}" for w in report.warnings if w.severity == "high"
    )
    shown = code if len(code) <= MAX_CODE_SHOWN else code[:MAX_CODE_SHOWN] + "\n..."
    return (
        f"The agent wants to run code the safety check flags:\n{findings}\n\n"
        f"```python\n{shown}\n```\nRun it?"
    )


def approve_key(code: str) -> str:
    return f"{APPROVE_KEY}_{hashlib.sha256(code.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def _input_request(message: str, key: str) -> InputRequiredToolResult:
    params = mcp_types.ElicitRequestFormParams(
        message=message,
        requested_schema={
            "type": "object",
            "properties": {"approve": {"type": "boolean", "title": "Run this code"}},
            "required": ["approve"],
        },
    )
    request = mcp_types.ElicitRequest(params=params)
    return InputRequiredToolResult(mcp_types.InputRequiredResult(input_requests={key: request}))


def _answer(ctx: Context, key: str) -> bool | None:
    """The user's answer from a repeated call (None when it carries none)."""
    responses = ctx.input_responses
    if not responses or key not in responses:
        return None
    answer: Any = responses[key]
    action = getattr(answer, "action", None) or (
        answer.get("action") if isinstance(answer, dict) else None
    )
    content = getattr(answer, "content", None)
    if content is None and isinstance(answer, dict):
        content = answer.get("content")
    return action == "accept" and bool((content or {}).get("approve"))


def _declined() -> UnsafeCodeError:
    return UnsafeCodeError(
        "the user declined to run this code (MCP_SAFETY_MODE=ask); change it or ask them"
    )


async def approval_for(ctx: Context, code: str, mode: str, fallback: str) -> Approval:
    """``ask_approval`` in safety mode ``ask``; nothing to do in the other modes."""
    if mode != "ask":
        return Approval()
    return await ask_approval(ctx, code, fallback)


async def ask_approval(ctx: Context, code: str, fallback: str) -> Approval:
    """Put flagged code to the user; raise UNSAFE_CODE when it must not run."""
    report = check_code_safety(code)
    if report.is_safe:
        return Approval()
    key = approve_key(code)
    answered = _answer(ctx, key)
    if answered is not None:
        if not answered:
            raise _declined()
        return Approval(note="the user approved running this flagged code")
    if not client_can_elicit(ctx):
        if fallback == "block":
            raise UnsafeCodeError(
                "the safety check flags this code and the client cannot ask the user "
                "(no elicitation), so it was not run (MCP_SAFETY_MODE=ask, "
                "MCP_SAFETY_ASK_FALLBACK=block)"
            )
        return Approval(
            note="the client cannot ask the user (no elicitation); the flagged code ran with "
            "warnings (MCP_SAFETY_ASK_FALLBACK=warn)"
        )
    request = ctx.request_context
    modern = request is None or request.protocol_version in MODERN_PROTOCOL_VERSIONS
    if modern or ctx.is_background_task:
        return Approval(ask=_input_request(_question(code, report), key))
    result = await ctx.elicit(_question(code, report), bool, response_title="Run this code")
    if result.action != "accept" or not result.data:
        raise _declined()
    return Approval(note="the user approved running this flagged code")
