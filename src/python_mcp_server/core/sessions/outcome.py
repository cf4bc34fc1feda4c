"""Turning what happened during one execution into its ``ExecutionResult``.

The session records facts as the call goes (the reply, a timeout, a death, a replacement,
whether the code ran at all); ``build_result`` turns them into the wire result, so the
words a caller reads about a lost kernel are written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from python_mcp_server.core.execution.output_collector import CollectedOutput
from python_mcp_server.core.sessions.lifecycle import Replacement
from python_mcp_server.models.execution import (
    ExecutionErrorInfo,
    ExecutionResult,
    KernelReplacement,
)

EXIT_REASON = "the code called exit() or quit(), which ends the kernel"


@dataclass
class ExecutionOutcome:
    """A finished execution: the wire result plus the images to attach as content."""

    result: ExecutionResult
    collected: CollectedOutput


@dataclass
class CallFacts:
    """What happened to one call, gathered while it runs."""

    status: str = "ok"
    message: str | None = None
    failure: ExecutionErrorInfo | None = None
    reply: dict[str, Any] | None = None
    #: Whether the kernel began this code (False: it never reached a live kernel).
    code_ran: bool = True
    #: Replacements since the previous result, and during this call, in order.
    replacements: list[Replacement] = field(default_factory=list)
    #: The replacement happened in this call and lost the state the code had built.
    restarted_here: bool = False
    input_exhausted: bool = False


def kernel_died(reason: str) -> ExecutionErrorInfo:
    return ExecutionErrorInfo(ename="KernelDied", evalue=reason, traceback=[], code="KERNEL_DIED")


def session_closed(reason: str) -> ExecutionErrorInfo:
    return ExecutionErrorInfo(
        ename="SessionClosed",
        evalue=f"the session was closed while this code ran ({reason}); its kernel was "
        "shut down and nothing will replace it",
        traceback=[],
        code="SESSION_CLOSED",
    )


def asked_to_exit(reply: dict[str, Any] | None) -> bool:
    """Whether the execute_reply carries IPython's exit request (exit() / quit())."""
    payload = (reply or {}).get("content", {}).get("payload") or []
    return any(
        isinstance(item, dict) and item.get("source") == "ask_exit" and not item.get("keepkernel")
        for item in payload
    )


def build_result(
    facts: CallFacts,
    collected: CollectedOutput,
    *,
    session_id: str,
    execution_id: str,
    elapsed: float,
) -> ExecutionResult:
    """The wire result of one call."""
    status = facts.status
    content = (facts.reply or {}).get("content", {})
    if facts.reply is not None and content.get("status") != "ok" and status == "ok":
        status = "error"
    failure = facts.failure
    if failure is None and status == "error" and collected.error is None and facts.reply:
        failure = ExecutionErrorInfo(
            ename=str(content.get("ename", "Error")),
            evalue=str(content.get("evalue", content.get("status", ""))),
            traceback=[],
        )
    error = failure or collected.error
    exhausted = facts.input_exhausted
    if error is not None and exhausted and error.ename == "EOFError" and not error.evalue:
        error.evalue = "input() was called but input_data has no more lines"
    if status == "timeout":
        error = ExecutionErrorInfo(
            ename="TimeoutError", evalue=facts.message or "timeout", code="EXECUTION_TIMEOUT"
        )
    notes = [facts.message] if facts.message else []
    replaced = _replacement(facts.replacements)
    if replaced is not None:
        if facts.restarted_here:
            notes.append(_kept(replaced))
        else:
            notes.insert(0, _replacement_note(replaced))
    if not facts.code_ran:
        notes.append("the code did not run")
    if collected.message:
        notes.append(collected.message)
    if facts.input_exhausted:
        notes.append("input_data ran out: input() raised EOFError")
    return ExecutionResult(
        status=status,
        stdout=collected.stdout,
        stderr=collected.stderr,
        result=collected.result,
        error=error,
        outputs=collected.outputs,
        execution_count=content.get("execution_count"),
        execution_time=round(elapsed, 6),
        session_id=session_id,
        execution_id=execution_id,
        truncated=collected.truncated,
        stdout_path=collected.stdout_path,
        stderr_path=collected.stderr_path,
        kernel_restarted=replaced is not None,
        kernel_replacement=replaced,
        restored_variables=replaced.restored_variables if replaced is not None else None,
        code_ran=facts.code_ran,
        message="; ".join(notes) if notes else None,
    )


def _replacement(replacements: list[Replacement]) -> KernelReplacement | None:
    if not replacements:
        return None
    last = replacements[-1]
    reasons = [r.reason for r in replacements]
    return KernelReplacement(
        reason=" / then: ".join(reasons),
        replaced_at=last.at,
        times=len(replacements),
        restored_variables=last.restored,
    )


def _kept(replaced: KernelReplacement) -> str:
    restored = replaced.restored_variables
    if restored:
        return f"the last snapshot restored {len(restored)} variable(s)"
    return "its variables were lost"


def _replacement_note(replaced: KernelReplacement) -> str:
    return f"the session's kernel was replaced before this code ran ({replaced.reason}); " + _kept(
        replaced
    )
