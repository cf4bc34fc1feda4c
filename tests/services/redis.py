"""A real Redis for tests: ``redis-server`` (Debian package) on a free loopback port.

Each ``RedisServer`` runs its own process with its own config and folder under the test's
tmp: loopback only, a password (so URLs carry one, as in production), no persistence
(``save ''``, no AOF). ``stop()`` ends it; ``start()`` brings it back on the same port
(empty). Without ``redis-server`` the tests are skipped, unless ``PMCP_REQUIRE_SERVICES``
is set (CI), where that is a failure.

Use the ``redis_server`` fixture (import it into a conftest or test module)::

    from tests.services.redis import redis_server  # noqa: F401
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port
from tests.services import services_required

#: Seconds a start or a stop may take.
DEADLINE = 20.0


class RedisServer:
    """One redis-server process with its own config, on one loopback port."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.config = directory / "redis.conf"
        self.log = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    f"requirepass {self.password}",
                    f"dir {directory}",
                    'save ""',
                    "appendonly no",
                    "daemonize no",
                    f"logfile {self.log}",
                    "databases 2",
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<port>/0``."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    def start(self) -> None:
        """Start redis-server (on the same port as before) and wait until it answers."""
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [self.executable, str(self.config), "--save", ""],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + DEADLINE
        with self.client() as probe:
            while True:
                if self.process.poll() is not None:
                    log = self.log.read_text() if self.log.exists() else ""
                    self.process = None
                    raise RuntimeError(f"redis-server exited at start:\n{log[-2000:]}")
                try:
                    if probe.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"redis-server on port {self.port} did not answer")
                time.sleep(0.05)

    def stop(self) -> None:
        """End redis-server (SIGTERM, then SIGKILL past the deadline) and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running Redis of the test's own, stopped at the end."""
    executable = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if executable is None:
        message = "redis-server is not installed (Debian package redis-server; .ci/run)"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = RedisServer(executable, tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
