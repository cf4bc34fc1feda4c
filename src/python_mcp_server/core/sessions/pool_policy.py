"""How many ready kernels the pool keeps, and how many it starts at once.

A ready kernel is memory held for a session that may never come, so the depth follows
what a kernel costs. A kernel forked from a preloaded template shares the template's
pages and holds about 17 to 28 MB of its own; a kernel that imports the data stack as it
starts holds about 90 MB, and takes seconds of CPU. The pool therefore keeps:

- ``size`` kernels whatever they cost (``MCP_KERNEL_POOL_SIZE``; 0 turns the pool off);
- ``burst`` kernels when the default environment's kernels fork (``MCP_KERNEL_POOL_BURST``),
  enough to serve a burst of that many concurrent ``create_session`` calls from ready
  kernels.

It starts at most ``parallel_starts`` kernels at a time while it holds at least half its
depth: a refill is CPU the next sessions' first calls want too, so the pool refills as a
steady stream beside them rather than as a spike. Below half its depth the next sessions
would find it empty, and wait for a start anyway: it then starts up to
``urgent_parallel_starts`` at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def default_parallel_starts(cpu_count: int | None = None) -> int:
    """One start per two cores (at least one): the other half serves the sessions."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // 2)


def default_urgent_parallel_starts(cpu_count: int | None = None) -> int:
    """One start per core: a pool nearly empty is what the next sessions wait for."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores)


@dataclass(frozen=True)
class PoolConfig:
    """The pool's settings."""

    #: Kernels kept ready whatever a kernel costs; 0: no pool.
    size: int
    #: Kernels kept ready when kernels fork from a template (cheap).
    burst: int = 0
    #: Most kernels the pool starts at once while it holds half its depth or more.
    parallel_starts: int = 1
    #: Most kernels the pool starts at once below half its depth.
    urgent_parallel_starts: int = 1

    def depth(self, forks: bool) -> int:
        """The kernels to keep ready, given whether the pool's kernels fork."""
        if self.size <= 0:
            return 0
        return max(self.size, self.burst) if forks else self.size

    def starts_allowed(self, ready: int, depth: int) -> int:
        """How many kernels may be starting at once with ``ready`` of ``depth`` ready."""
        if 2 * ready < depth:
            return max(self.parallel_starts, self.urgent_parallel_starts)
        return self.parallel_starts
