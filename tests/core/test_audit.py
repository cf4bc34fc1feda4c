"""Audit lines and the settings summary never carry a secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from python_mcp_server.core.observability.audit import audit_install, redact
from python_mcp_server.core.observability.health_report import summarize_settings
from python_mcp_server.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("numpy==2.0", "numpy==2.0"),
        (
            "git+https://user:ghp_SECRET@github.com/o/r.git",
            "git+https://***@github.com/o/r.git",
        ),
        ("https://tok@pypi.example/simple", "https://***@pypi.example/simple"),
        (
            "https://x.example/simple?api_token=SECRET&x=1",
            "https://x.example/simple?api_token=***&x=1",
        ),
        ("pkg @ file:///wheels/pkg.whl", "pkg @ file:///wheels/pkg.whl"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_install_audit_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.audit")
    audit_install(
        packages=["requests==2.32", "git+https://me:SECRET@example.com/x.git"],
        venv_name=None,
        status="ok",
        duration=1.23456789,
        installer="uv",
    )
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("install packages=requests==2.32,git+https://***@example.com")
    assert "venv_name=default" in message
    assert "duration=1.234568" in message
    assert "SECRET" not in message
    assert record.audit["event"] == "install"  # type: ignore[attr-defined]


def test_settings_summary_masks_secrets_and_drops_paths(tmp_path: Path) -> None:
    settings = Settings(
        workspace_dir=tmp_path,
        auth_token="abc-secret",
        gateway_url="https://u:pw-secret@gateway.example:8888",
        pip_find_links="/srv/wheels,https://example.org/wheels/",
    )
    summary = summarize_settings(settings.model_dump())
    assert summary["auth_token"] == "***"
    assert summary["gateway_token"] is None
    assert summary["gateway_url"] == "https://***@gateway.example:8888"
    assert "workspace_dir" not in summary
    assert "state_dir" not in summary
    assert "execution_timeout_ms" not in summary
    assert summary["pip_find_links"] == "<server path>,https://example.org/wheels/"
    assert summary["max_history"] == 1000
    assert "secret" not in repr(summary)
