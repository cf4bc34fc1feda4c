"""Other executors' setting names read as aliases: each variable set -> the Settings value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from python_mcp_server.docs_gen.settings_ref import ALIAS_NOTES, aliases
from python_mcp_server.settings import Settings

#: alias, value in their format, field, value expected here.
CASES: list[tuple[str, str, str, Any]] = [
    ("EXECUTION_TIMEOUT_MS", "2500", "execution_timeout", 2.5),
    ("MAX_CONCURRENT_EXECUTIONS", "5", "max_concurrent_executions", 5),
    ("MAX_MEMORY_MB", "512", "max_memory_mb", 512),
    ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("LOG_FORMAT", "json", "log_format", "json"),
    ("VENVS_BASE_PATH", "/tmp/compat-venvs", "venvs_dir", Path("/tmp/compat-venvs")),
    ("DEFAULT_VENV_NAME", "data-science", "default_venv_name", "data-science"),
    ("PREINSTALLED_PACKAGES", "numpy pandas", "preinstalled_packages", "numpy pandas"),
    ("PYTHON_EXECUTOR_TIMEOUT", "45", "execution_timeout", 45.0),
    ("PYTHON_EXECUTOR_MAX_HISTORY", "50", "max_history", 50),
    ("PYTHON_EXECUTOR_ALLOW_UNSAFE", "true", "allow_unsafe", True),
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MCP_ or alias variable of the developer's shell leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("MCP_") or name.upper() in aliases():
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("alias", "raw", "field", "expected"), CASES)
def test_alias_sets_the_setting(
    monkeypatch: pytest.MonkeyPatch, alias: str, raw: str, field: str, expected: Any
) -> None:
    default = getattr(Settings(), field)
    assert default != expected, "the case must change the value to prove anything"
    monkeypatch.setenv(alias, raw)
    assert getattr(Settings(), field) == expected


def test_every_alias_of_the_issue_is_tested_and_documented() -> None:
    assert {case[0] for case in CASES} == set(aliases())
    assert set(ALIAS_NOTES) == set(aliases())


def test_mcp_name_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.setenv("MCP_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("MAX_MEMORY_MB", "512")
    monkeypatch.setenv("MCP_MAX_MEMORY_MB", "1024")
    settings = Settings()
    assert settings.log_level == "WARNING"
    assert settings.max_memory_mb == 1024


def test_seconds_win_over_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTION_TIMEOUT_MS", "2500")
    monkeypatch.setenv("MCP_EXECUTION_TIMEOUT", "7")
    assert Settings().execution_timeout == 7.0
    monkeypatch.delenv("MCP_EXECUTION_TIMEOUT")
    monkeypatch.setenv("PYTHON_EXECUTOR_TIMEOUT", "9")
    assert Settings().execution_timeout == 9.0


def test_a_flag_beats_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    assert Settings(log_level="DEBUG").log_level == "DEBUG"


def test_toolsets_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TOOLSETS", "execution,compat")
    assert Settings().toolsets == "execution,compat"
