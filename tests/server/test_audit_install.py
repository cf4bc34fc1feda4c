"""One audit line per package install, ok or failed, from real uv installs of local wheels."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from tests.helpers import tool_error
from tests.wheels import build_test_wheels


@pytest.fixture
def settings_overrides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return dict(build_test_wheels(tmp_path_factory.mktemp("wheels")))


async def test_install_audit_lines(
    client: Client[Any], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.audit")
    await client.call_tool("install_dependencies", {"packages": "pmcp-tiny==1.0"})
    text = await tool_error(client, "install_dependencies", {"packages": "pmcp-no-such-package"})
    assert text.startswith("PACKAGE_INSTALLATION_ERROR:")
    lines = [r for r in caplog.records if r.name == "python_mcp_server.audit"]
    assert [line.audit["event"] for line in lines] == ["install", "install"]  # type: ignore[attr-defined]
    ok, failed = (json.loads(line.getMessage()) for line in lines)
    assert (ok["packages"], ok["venv_name"], ok["status"]) == ("pmcp-tiny==1.0", "default", "ok")
    assert ok["installer"] == "uv"
    assert (failed["packages"], failed["venv_name"]) == ("pmcp-no-such-package", "default")
    assert failed["status"] == "error"
    assert failed["error"] == "PACKAGE_INSTALLATION_ERROR"
    # The same records, once each, in the database's audit table (newest first).
    await services.database.flush()
    stored = await services.audit.query(limit=10, event="install")
    assert [json.loads(line) for line in stored] == [failed, ok]


async def test_create_venv_packages_are_audited(
    client: Client[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.audit")
    await client.call_tool("create_venv", {"venv_name": "audited", "packages": "pmcp-tiny==1.0"})
    text = await tool_error(
        client, "create_venv", {"venv_name": "broken", "packages": "pmcp-no-such-package"}
    )
    assert text.startswith("PACKAGE_INSTALLATION_ERROR:")
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "python_mcp_server.audit"
    ]
    installs = [line for line in lines if line["event"] == "install"]
    assert [(i["venv_name"], i["status"]) for i in installs] == [
        ("audited", "ok"),
        ("broken", "error"),
    ]
    assert installs[1]["error"] == "PACKAGE_INSTALLATION_ERROR"
