"""While Redis is down, Docket's retry warnings come out as one short line per minute per
logger (no traceback), instead of a traceback every second."""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError

from python_mcp_server.logging_setup import StoreOutageFilter, TextFormatter


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(TextFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_outage_warnings_are_short_and_rare() -> None:
    logger = logging.getLogger("docket.worker.outage-test")
    logger.propagate = False
    collect = Collect()
    logger.addHandler(collect)
    outages = StoreOutageFilter(every=60)
    logger.addFilter(outages)
    try:
        for _ in range(5):  # five retries within the same minute
            try:
                raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")
            except RedisConnectionError:
                logger.warning("Redis is unavailable, retrying in %s...", "0:00:01", exc_info=True)
        logger.warning("a task failed")  # anything else passes as it is
    finally:
        logger.removeFilter(outages)
        logger.removeHandler(collect)
    assert len(collect.lines) == 2, collect.lines
    first, other = collect.lines
    assert "Redis is unavailable, retrying in 0:00:01... (ConnectionError: Error 111" in first
    assert "Traceback" not in first
    assert "\n" not in first
    assert other.endswith("a task failed")
