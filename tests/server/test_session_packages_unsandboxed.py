"""Session package folders without the sandbox, with kernels forked from a template.

Not a security boundary (``MCP_SANDBOX=none``), but each session still installs for
itself: a forked kernel gets its own session's folder, never the template's or another's.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from tests.helpers import call, run
from tests.wheels import build_test_wheels


@pytest.fixture(scope="module")
def wheel_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def settings_overrides(wheel_settings: dict[str, Any]) -> dict[str, Any]:
    return {**wheel_settings, "sandbox": "none", "kernel_fork": True, "kernel_preload": "json"}


async def test_forked_kernels_each_see_their_own_session_folder(
    client: Client[Any], services: Services
) -> None:
    await call(client, "create_session", session_id="a")
    await call(client, "create_session", session_id="b")
    assert getattr(services.launcher, "forked", 0) >= 2  # they did fork from a template
    assert len(getattr(services.launcher, "templates", [])) == 1  # one, shared by sessions
    magic = await run(client, "%pip install pmcp-tiny==1.0", session_id="a")
    assert "\x1b[" not in magic["stdout"] + magic["stderr"]
    imported = await run(client, "import pmcp_tiny\npmcp_tiny.VERSION", session_id="a")
    assert imported["result"] == "'1.0'", (magic, imported)
    elsewhere = await run(client, "import pmcp_tiny", session_id="b")
    assert elsewhere["error"]["ename"] == "ModuleNotFoundError"
    folders = [
        (await run(client, "import os; os.environ['PMCP_SESSION_PACKAGES']", session_id=s))[
            "result"
        ]
        for s in ("a", "b")
    ]
    assert folders[0] != folders[1]
