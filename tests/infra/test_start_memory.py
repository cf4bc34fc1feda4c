"""A kernel that fails under an address-space limit says how close to it it came.

The kernel program ends the log of a failed kernel with the peak of its address space and
its limit (``START_MEMORY_LINE``), and the launcher calls a start out of memory from those
figures: under an exhausted limit the failure that surfaces is whatever allocation failed
first, often one that names no memory at all (a C extension that returns NULL without an
exception: SystemError). Each case runs the real kernel program in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from python_mcp_server.infra.kernels import kernel_program
from python_mcp_server.infra.kernels.limits import (
    LARGEST_START_MAPPING_MIB,
    LimitedLauncher,
    ResourceLimits,
    start_memory,
)
from python_mcp_server.infra.kernels.process_kernel import describe_exit

LIMIT_MIB = 512

#: Runs the kernel program's own functions: limit the address space, optionally fill it,
#: then fail the way a starved C extension does, and report as a failed kernel does.
_FAILING = """
import sys
program = {"__name__": "kernel_program"}
exec(open(sys.argv[1]).read(), program)
reserve = program["apply_limits"]([["RLIMIT_AS", int(sys.argv[2]) << 20]])
held = []
if sys.argv[3] == "fill":
    size = 32 << 20
    while size >= 4096:
        try:
            held.append(bytearray(size))
        except MemoryError:
            size //= 2
try:
    raise SystemError("error return without exception set")
except SystemError as exc:
    program["report_start_failure"](exc, reserve)
sys.exit(1)
"""


def _fail(fill: bool) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _FAILING,
            kernel_program.__file__,
            str(LIMIT_MIB),
            "fill" if fill else "keep",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    return describe_exit(result.returncode, result.stderr)


def _launcher(tmp_path: Path) -> LimitedLauncher:
    return LimitedLauncher(tmp_path, ResourceLimits(memory_bytes=LIMIT_MIB << 20))


def test_a_starved_kernel_is_out_of_memory_whatever_failed(tmp_path: Path) -> None:
    reason = _fail(fill=True)
    assert "MemoryError" not in reason, reason
    assert "Cannot allocate" not in reason, reason
    figures = start_memory(reason)
    assert figures is not None, reason
    peak, limit = figures
    assert limit == LIMIT_MIB
    assert limit - peak < LARGEST_START_MAPPING_MIB, reason
    hint = _launcher(tmp_path).start_failure_hint(reason)
    assert hint is not None, reason
    assert "raise MCP_MAX_MEMORY_MB" in hint, reason


def test_a_kernel_far_from_its_limit_is_not_called_out_of_memory(tmp_path: Path) -> None:
    reason = _fail(fill=False)
    figures = start_memory(reason)
    assert figures is not None, reason
    assert figures[1] - figures[0] >= LARGEST_START_MAPPING_MIB, reason
    assert "SystemError: error return without exception set" in reason
    assert _launcher(tmp_path).start_failure_hint(reason) is None


def test_an_unlimited_kernel_adds_no_memory_line() -> None:
    assert kernel_program.start_memory_line() == ""
