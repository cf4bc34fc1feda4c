"""Real services (PostgreSQL, Redis, nginx) started and stopped by the test fixtures."""

from __future__ import annotations

import os


def services_required() -> bool:
    """In CI (``PMCP_REQUIRE_SERVICES``, set by .ci/run) a missing service is a failure,
    never a skip."""
    return os.environ.get("PMCP_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}
