"""MemoryLimitHook on kernel deaths: a death cannot be produced on demand from an allocation
under RLIMIT_AS (the kernel gets MemoryError instead, tested for real in
tests/server/test_sandbox.py), so these outcomes are built by hand."""

from __future__ import annotations

from typing import Any

import pytest

from python_mcp_server.core.execution.limits import MemoryLimitHook
from python_mcp_server.core.execution.output_collector import CollectedOutput
from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.session import ExecutionOutcome
from python_mcp_server.infra.kernels.limits import out_of_memory
from python_mcp_server.models.execution import ExecutionErrorInfo, ExecutionResult


def outcome(ename: str, evalue: str, code: str | None) -> ExecutionOutcome:
    error = ExecutionErrorInfo(ename=ename, evalue=evalue, code=code)
    result = ExecutionResult(
        status="error", error=error, session_id="s", execution_id="e", message=None
    )
    collected = CollectedOutput("", "", None, error, [], [], None, None, False)
    return ExecutionOutcome(result=result, collected=collected)


async def apply(done: ExecutionOutcome, limit: int | None = 512) -> ExecutionResult:
    session: Any = None  # the hook never looks at the session
    await MemoryLimitHook(limit).after(session, ExecutionRequest(code="x"), done)
    return done.result


@pytest.mark.parametrize(
    "reason",
    [
        "the kernel process exited with code 1: MemoryError",
        "the kernel process was killed by SIGABRT: terminate called after throwing an "
        "instance of 'std::bad_alloc'",
        "the kernel process exited with code 1: OSError: [Errno 12] Cannot allocate memory",
        "the kernel process exited with code 1: numpy.core._exceptions._ArrayMemoryError: "
        "Unable to allocate 8.00 GiB",
    ],
)
async def test_a_death_from_an_allocation_failure_is_memory_limit_exceeded(reason: str) -> None:
    result = await apply(outcome("KernelDied", reason, "KERNEL_DIED"))
    assert result.error is not None
    assert result.error.code == "MEMORY_LIMIT_EXCEEDED"
    assert result.message == (
        "the kernel ran out of memory: an allocation exceeded the kernel's memory limit of "
        "512 MiB (MCP_MAX_MEMORY_MB)"
    )


@pytest.mark.parametrize(
    "reason",
    [
        "the kernel process was killed by SIGKILL (killed from outside, or out of memory)",
        "the kernel process exited with code 3",
    ],
)
async def test_other_deaths_stay_kernel_died(reason: str) -> None:
    assert not out_of_memory(reason)
    result = await apply(outcome("KernelDied", reason, "KERNEL_DIED"))
    assert result.error is not None
    assert result.error.code == "KERNEL_DIED"
    assert result.message is None


async def test_memory_error_without_a_limit_says_so() -> None:
    result = await apply(outcome("MemoryError", "", None), limit=None)
    assert result.error is not None
    assert result.error.code == "MEMORY_LIMIT_EXCEEDED"
    assert result.message == (
        "an allocation exceeded the memory available; the session keeps its other variables"
    )


async def test_other_errors_are_left_alone() -> None:
    result = await apply(outcome("ValueError", "bad", None))
    assert result.error is not None
    assert result.error.code is None
