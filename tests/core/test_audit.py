"""Audit lines are escaped JSON and never carry a secret; nor does the settings summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from python_mcp_server.core.observability.audit import audit_execution, audit_install, redact
from python_mcp_server.core.observability.health_report import summarize_settings
from python_mcp_server.logging_setup import JsonFormatter, TextFormatter
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
    fields = json.loads(message)
    assert fields["event"] == "install"
    assert fields["packages"] == "requests==2.32,git+https://***@example.com/x.git"
    assert fields["venv_name"] == "default"
    assert fields["duration"] == 1.234568
    assert "session_id" not in fields  # fields without a value are left out
    assert "SECRET" not in message
    assert record.audit == fields  # type: ignore[attr-defined]


HOSTILE = 'Boom\n{"event": "install", "packages": "forged"}\r\u2028\x1b[2J"'


def test_every_field_is_escaped_into_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="python_mcp_server.audit")
    audit_execution(
        execution_id="e1",
        session_id=HOSTILE,
        status="error",
        duration=0.1,
        code="raise X",
        error_name=HOSTILE,
    )
    (record,) = caplog.records
    line = record.getMessage()
    assert line.isascii()
    assert len(line.splitlines()) == 1
    assert json.loads(line)["error"] == HOSTILE
    assert json.loads(line)["session_id"] == HOSTILE


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_formats_keep_hostile_text_on_its_line(fmt: str) -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "%s", (HOSTILE,), None)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    lines = formatter.format(record).split("\n")
    assert all(line.startswith("    ") for line in lines[1:])
    assert not any(ch in "".join(lines) for ch in "\r\u2028\x1b")
    if fmt == "json":
        assert len(lines) == 1
        assert json.loads(lines[0])["message"] == HOSTILE


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
