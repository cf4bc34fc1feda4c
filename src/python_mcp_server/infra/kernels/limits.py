"""Resource limits of local kernels, set by the kernel process on itself before it starts.

The kernel's command line becomes ``python -c <kernel_program> <config> -f <connection
file> ...``: the program sets the rlimits (soft and hard alike, so the code cannot raise
them again unless it holds CAP_SYS_RESOURCE, which the sandbox drops) and then runs the
kernel in the same process: no extra process, no extra start-up time.

- ``RLIMIT_AS`` (memory): an allocation over it raises MemoryError inside the kernel,
  which survives.
- ``RLIMIT_FSIZE`` (file size): a write past it fails with EFBIG ("File too large");
  Python ignores SIGXFSZ, so the kernel survives.
- ``RLIMIT_NPROC`` (processes and threads): only meaningful inside the sandbox's own user
  namespace; for root on the host it is never enforced, so the plain launcher omits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_mcp_server.errors import SandboxUnavailableError
from python_mcp_server.infra.kernels.base import KernelLaunchRequest, LaunchedKernel
from python_mcp_server.infra.kernels.kernel_program import START_MEMORY_LINE
from python_mcp_server.infra.kernels.local import LocalLauncher

MIB = 1024 * 1024
#: Output of a process that could not get memory: Python's, the C library's, the dynamic
#: loader's (a library it could not map) and C++'s.
ALLOCATION_FAILURES = (
    "MemoryError",
    "Cannot allocate memory",
    "Unable to allocate",
    "std::bad_alloc",
    "Out of memory",
    "failed to map segment",
)
#: A thread that could not start: its stack could not be mapped (or the process limit).
THREAD_FAILURE = "can't start new thread"
#: The largest single mapping a starting kernel asks for: a glibc malloc arena's heap
#: (HEAP_MAX_SIZE on 64-bit). A kernel that failed with its address space's peak closer
#: than this to its limit may have been refused any of its mappings.
LARGEST_START_MAPPING_MIB = 64
_START_MEMORY = re.compile(re.escape(START_MEMORY_LINE).replace(r"\{\}", r"(\d+)"))


def start_memory(reason: str) -> tuple[int, int] | None:
    """(peak, limit) in MiB from a kernel's ``START_MEMORY_LINE`` in ``reason``, if any."""
    match = _START_MEMORY.search(reason)
    return None if match is None else (int(match[1]), int(match[2]))


def out_of_memory(reason: str) -> bool:
    """Whether a kernel that died for ``reason`` (its exit and last output) was short of
    memory: its output names an allocation failure, or its address space peaked within
    the largest mapping a kernel asks for of its limit (whatever then failed: a C
    extension can return NULL without an exception, ``listdir`` can fail with ENOMEM)."""
    if any(marker in reason for marker in ALLOCATION_FAILURES):
        return True
    figures = start_memory(reason)
    return figures is not None and figures[1] - figures[0] < LARGEST_START_MAPPING_MIB


@dataclass(frozen=True)
class ResourceLimits:
    """Per-kernel rlimits; None leaves a limit as the server's own."""

    memory_bytes: int | None = None
    file_size_bytes: int | None = None
    max_processes: int | None = None

    def rlimits(self) -> list[tuple[str, int]]:
        """(resource constant name, value) pairs for the limits that are set."""
        pairs = [
            ("RLIMIT_AS", self.memory_bytes),
            ("RLIMIT_FSIZE", self.file_size_bytes),
            ("RLIMIT_NPROC", self.max_processes),
        ]
        return [(name, value) for name, value in pairs if value is not None]

    def without_processes(self) -> ResourceLimits:
        return ResourceLimits(self.memory_bytes, self.file_size_bytes, None)

    def less_scratch(self, share: int) -> ResourceLimits:
        """The memory limit less the 1/``share`` of it the sandbox's tmpfs folders take."""
        if self.memory_bytes is None:
            return self
        memory = self.memory_bytes - self.memory_bytes // share
        return ResourceLimits(memory, self.file_size_bytes, self.max_processes)


class LimitedLauncher(LocalLauncher):
    """A local launcher whose kernels start under resource limits."""

    name = "local"

    def __init__(
        self,
        state_dir: Path,
        limits: ResourceLimits,
        *,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(state_dir, start_timeout=start_timeout)
        self.limits = limits
        #: Why the sandbox the settings asked for is not in use (auto without bubblewrap).
        self.sandbox_warning: str | None = None

    def start_failure_hint(self, reason: str) -> str | None:
        memory = self.limits.memory_bytes
        if memory is None:
            return None
        if not (out_of_memory(reason) or THREAD_FAILURE in reason):
            return None
        return (
            f"the kernel ran out of memory while starting, under the limit of "
            f"{memory // MIB} MiB its process gets from MCP_MAX_MEMORY_MB: too little for "
            f"a kernel on this server; raise MCP_MAX_MEMORY_MB"
        )

    def program_config(self, request: KernelLaunchRequest) -> dict[str, Any]:
        config = super().program_config(request)
        if self.limits.rlimits():
            config["limits"] = [list(pair) for pair in self.limits.rlimits()]
        return config

    def kernel_env(self, request: KernelLaunchRequest) -> dict[str, str]:
        env = super().kernel_env(request)
        if self.limits.memory_bytes is not None:
            # glibc reserves 64 MiB of address space per thread arena; under RLIMIT_AS that
            # reservation, not real use, would exhaust the limit in threaded code.
            env.setdefault("MALLOC_ARENA_MAX", "2")
        return env


class UnavailableLauncher(LimitedLauncher):
    """Stands in for the sandbox that does not work here: refuses every kernel, saying why."""

    name = "unavailable"

    def __init__(self, state_dir: Path, limits: ResourceLimits, problem: str) -> None:
        super().__init__(state_dir, limits)
        self.problem = problem
        self.sandbox_warning = problem

    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        raise SandboxUnavailableError(self.problem)
