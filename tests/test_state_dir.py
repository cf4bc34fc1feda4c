"""The state folder defaults to its own place outside the workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_mcp_server.settings import Settings, default_state_dir


def test_default_state_is_outside_the_workspace_under_xdg_state_home(
    tmp_path: Path, state_home: Path
) -> None:
    settings = Settings(workspace_dir=tmp_path / "ws")
    state = settings.state_path
    assert state.parent == state_home / "python-mcp-server"
    assert state.name.startswith("ws-")
    assert settings.workspace_path not in state.parents
    assert settings.venvs_path == state / "venvs"
    other = Settings(workspace_dir=tmp_path / "elsewhere" / "ws").state_path
    assert other != state
    assert Settings(workspace_dir=tmp_path / "ws").state_path == state


def test_without_xdg_state_home_it_is_under_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for value in ("", "relative/path"):  # unset or not absolute: ignored, as XDG says
        state = default_state_dir(tmp_path / "ws", {"XDG_STATE_HOME": value})
        assert state.parent == tmp_path / "home" / ".local" / "state" / "python-mcp-server"


def test_an_explicit_state_dir_wins(tmp_path: Path) -> None:
    settings = Settings(workspace_dir=tmp_path / "ws", state_dir=tmp_path / "ws" / ".state")
    assert settings.state_path == (tmp_path / "ws" / ".state").resolve()
