"""Which kernels the health monitor probes in a round, so idle sessions cost (almost) nothing.

A kernel_info round trip wakes the kernel and the server; sampling a process tree with
psutil reads dozens of /proc files. Neither is needed to know most of what matters:

- a dead kernel is seen without either (its process handle says so each round);
- a kernel that answered a call recently answered: no probe until ``probe_every`` passes;
- a kernel whose process is stopped, traced or a zombie is probed at once;
- after an unanswered probe, the kernel is probed every round until it answers (so a hung
  kernel is confirmed within a few rounds);
- process figures (memory, CPU, threads, files) are sampled when someone asks for them
  (``health_check``), not in the background.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

#: psutil states in which a kernel cannot answer, whatever its last probe said.
_STUCK = {
    psutil.STATUS_STOPPED,
    psutil.STATUS_TRACING_STOP,
    psutil.STATUS_ZOMBIE,
    psutil.STATUS_DEAD,
}


@dataclass(frozen=True)
class ProbePolicy:
    """When an idle kernel is probed."""

    #: Seconds after a kernel last proved responsive (a call or a probe) before the next probe.
    probe_every: float = 60.0

    def due(
        self,
        *,
        pid: int | None,
        last_used: float,
        last_probe: float | None,
        unanswered: bool,
        now: float | None = None,
    ) -> bool:
        """Whether to probe this kernel in this round."""
        if unanswered or (pid is not None and process_stuck(pid)):
            return True
        now = time.monotonic() if now is None else now
        last_proof = max(last_used, last_probe if last_probe is not None else float("-inf"))
        return now - last_proof >= self.probe_every


def process_stuck(pid: int) -> bool:
    """Whether the process is stopped, traced or a zombie (one small /proc read)."""
    try:
        return psutil.Process(pid).status() in _STUCK
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False
