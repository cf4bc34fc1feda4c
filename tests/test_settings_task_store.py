"""MCP_REDIS_URL and MCP_TASKS_URL: one task store, never two that silently disagree."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from python_mcp_server.settings import Settings

REDIS = "redis://:pw@127.0.0.1:6379/0"
GATEWAY = "http://127.0.0.1:8888"


def test_in_memory_by_default() -> None:
    settings = Settings()
    assert (settings.redis_url, settings.tasks_url) == (None, "memory://")


def test_the_task_store_follows_the_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_REDIS_URL", REDIS)
    monkeypatch.setenv("MCP_GATEWAY_URL", GATEWAY)
    assert Settings().tasks_url == REDIS
    monkeypatch.setenv("MCP_TASKS_URL", REDIS)  # the same URL twice is fine
    assert Settings().tasks_url == REDIS


def test_two_different_stores_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_REDIS_URL", REDIS)
    monkeypatch.setenv("MCP_TASKS_URL", "redis://127.0.0.1:6380/0")
    with pytest.raises(ValidationError, match="name different task stores"):
        Settings(gateway_url=GATEWAY)


def test_a_shared_store_needs_a_gateway() -> None:
    with pytest.raises(ValidationError, match="needs MCP_GATEWAY_URL"):
        Settings(redis_url=REDIS)
    with pytest.raises(ValidationError, match="needs MCP_GATEWAY_URL"):
        Settings(tasks_url=REDIS)


def test_the_redis_url_must_be_one() -> None:
    with pytest.raises(ValidationError, match="MCP_REDIS_URL must start with"):
        Settings(redis_url="http://127.0.0.1:6379", gateway_url=GATEWAY)
