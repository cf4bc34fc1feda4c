"""The kernel preload through the real protocol: ready data stack, and a preload that fails."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from tests.helpers import call, run

FORKED = {"sandbox": "none", "kernel_preload": "auto", "kernel_pool_size": 1}
BROKEN = {"sandbox": "none", "kernel_preload": "numpy, no_such_module_pmcp", "kernel_pool_size": 0}

SEEN = (
    "import sys\n"
    "print(sorted(m for m in ('numpy', 'pandas', 'matplotlib.pyplot') if m in sys.modules))"
)


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_a_new_session_has_the_data_stack_imported_and_plots_inline(
    client: Client[Any], services: Services
) -> None:
    await call(client, "create_session", session_id="data")
    first = await run(client, SEEN, session_id="data")
    assert first["stdout"].strip() == "['matplotlib.pyplot', 'numpy', 'pandas']"
    assert first["message"] is None  # nothing went wrong, nothing to say
    plotted = await run(
        client,
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
        session_id="data",
    )
    assert [o["mime_type"] for o in plotted["outputs"]] == ["image/png"]
    variables = await call(client, "list_variables", session_id="data")
    assert not [v for v in variables["variables"] if v["name"] in ("np", "pd", "numpy")]
    health = await call(client, "health_check")
    assert health["preload"]["mode"] == "fork"
    assert health["preload"]["modules"][:2] == ["numpy", "pandas"]
    assert health["preload"]["problem"] is None
    assert services.launcher.preload_mode == "fork"


@pytest.mark.parametrize("settings_overrides", [BROKEN])
async def test_a_failing_preload_module_is_reported_once_and_sessions_still_start(
    client: Client[Any],
) -> None:
    await call(client, "create_session", session_id="one")
    first = await run(client, "print(1)", session_id="one")
    assert first["stdout"] == "1\n"
    assert "no_such_module_pmcp" in first["message"]
    second = await run(client, "print(2)", session_id="one")
    assert second["message"] is None  # told once per session
    health = await call(client, "health_check")
    assert health["status"] == "degraded"
    assert any("no_such_module_pmcp" in p for p in health["problems"])
    # Later kernels start plain, and their sessions are told why.
    await call(client, "create_session", session_id="two")
    plain = await run(client, "import sys; print('numpy' in sys.modules)", session_id="two")
    assert plain["stdout"] == "False\n"
    assert "without a preload" in plain["message"]
