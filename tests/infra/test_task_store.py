"""The task store's URL shown without its password, and the ping that tells whether a
real Redis answers (the server refuses to start when it does not)."""

from __future__ import annotations

import pytest

from python_mcp_server.errors import TaskStoreUnavailableError
from python_mcp_server.infra.task_store import is_outage, masked_url, ping
from tests.helpers import free_port
from tests.services.redis import RedisServer


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        (
            "redis://user:pw@host:6379/0?password=x&db=1",
            "redis://user:***@host:6379/0?password=***&db=1",
        ),
        ("rediss://host:6380", "rediss://host:6380"),
        ("rediss://user@host", "rediss://user@host"),
        ("unix:///run/redis.sock?password=pw", "unix:///run/redis.sock?password=***"),
        (
            "redis+sentinel://:pw@a:26379,b:26379/main/0",
            "redis+sentinel://:***@a:26379,b:26379/main/0",
        ),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown


async def test_ping_passes_on_a_live_redis_and_names_a_dead_one(
    redis_server: RedisServer,
) -> None:
    await ping(redis_server.url, 5)
    redis_server.stop()
    with pytest.raises(TaskStoreUnavailableError) as caught:
        await ping(redis_server.url, 5)
    assert redis_server.password not in str(caught.value)
    assert str(caught.value).startswith("TASK_STORE_UNAVAILABLE: the task store at redis://:***@")
    assert is_outage(caught.value.__cause__ or caught.value)


async def test_a_wrong_password_is_no_store_either(redis_server: RedisServer) -> None:
    url = f"redis://:not-{redis_server.password}@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(TaskStoreUnavailableError, match=r"WRONGPASS|invalid"):
        await ping(url, 5)


async def test_nothing_listening_is_unavailable() -> None:
    with pytest.raises(TaskStoreUnavailableError, match="unreachable"):
        await ping(f"redis://127.0.0.1:{free_port()}/0", 5)


async def test_a_sentinel_without_master_is_unavailable_in_one_short_line() -> None:
    ports = free_port(), free_port()
    url = f"redis+sentinel://:hunter2-pw@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/main/0"
    with pytest.raises(TaskStoreUnavailableError) as caught:
        await ping(url, 5)
    text = str(caught.value)
    assert "hunter2-pw" not in text
    assert "redis+sentinel://:***@127.0.0.1:" in text
    assert "\n" not in text
    assert len(text) < 400, text
