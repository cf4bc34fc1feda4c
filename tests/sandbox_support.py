"""Whether the bubblewrap sandbox works on this machine, for the tests that need it.

CI (``.ci/run``) installs bubblewrap and sets ``PMCP_REQUIRE_SANDBOX=1``: there a missing
or broken sandbox fails the sandbox tests instead of skipping them.
"""

from __future__ import annotations

import functools
import os

import pytest

from python_mcp_server.infra.kernels.sandbox import find_bwrap, probe_bwrap


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    bwrap = find_bwrap()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    return probe_bwrap(bwrap, "deny")


def require_bwrap() -> None:
    """Fail (in CI) or skip (elsewhere) when bubblewrap cannot sandbox kernels here."""
    problem = bwrap_problem()
    if problem is None:
        return
    if os.environ.get("PMCP_REQUIRE_SANDBOX"):
        pytest.fail(f"the kernel sandbox is required here: {problem}")
    pytest.skip(f"the kernel sandbox cannot run here: {problem}")
