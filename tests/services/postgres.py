"""A real PostgreSQL server for tests: its own cluster in a temporary folder, on loopback.

API (kept small; other test files build on it):

- ``PostgresServer.create()``: initdb into a fresh temporary folder and start the server
  on a free loopback port. A role ``pmcp`` with a random password owns everything.
- ``.url``: ``postgresql://pmcp:<password>@127.0.0.1:<port>/pmcp``;
  ``.url_for(name)`` the same for another database, made by ``.create_database(name)``
  (returns the URL).
- ``.stop()`` (``pg_ctl stop -m fast``) and ``.start()`` (same port, same data): for fault
  tests. ``.close()`` stops it and removes the folder; ``.postmaster_pid`` while running.

Fixtures: ``postgres_server`` (one per test session, shared; never stop it) and
``postgres_url`` (a fresh database on it per test). A test that stops the server makes
its own with ``PostgresServer.create()`` (or the ``own_postgres`` fixture).

Binaries come from ``/usr/lib/postgresql/*/bin`` (the newest) or ``PATH``. As root they run
as the ``postgres`` user (initdb and postgres refuse root) on a folder that user owns. When
PostgreSQL is missing the tests are skipped, unless ``PMCP_REQUIRE_SERVICES`` is set (CI),
where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from glob import glob
from pathlib import Path

import pytest

from tests.helpers import wait_gone
from tests.services import services_required

ROLE = "pmcp"
START_TIMEOUT = 60


def find_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres (newest Debian version first)."""

    def version(folder: str) -> int:
        name = Path(folder).parent.name
        return int(name) if name.isdigit() else -1

    candidates = sorted(glob("/usr/lib/postgresql/*/bin"), key=version)
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def skip_or_fail(message: str) -> None:
    if services_required():
        pytest.fail(f"{message} (PMCP_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(message)


class PostgresServer:
    """One PostgreSQL cluster of a test's own."""

    def __init__(self, bin_dir: Path, root: Path, port: int, password: str) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.password = password
        self._as_postgres = os.geteuid() == 0

    # --- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(cls) -> PostgresServer:
        """initdb and start; skips (or fails under PMCP_REQUIRE_SERVICES) without PostgreSQL."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            skip_or_fail("PostgreSQL is not installed (Debian: apt-get install postgresql)")
            raise AssertionError("unreachable")
        root = Path(tempfile.mkdtemp(prefix="pmcp-postgres-"))
        server = cls(bin_dir, root, free_port(), secrets.token_urlsafe(16))
        try:
            server._initdb()
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def _command(self, *argv: str) -> list[str]:
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def _run(self, *argv: str) -> None:
        result = subprocess.run(
            self._command(*argv),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}): {result.stderr or result.stdout}"
                f"\n{self.log_tail()}"
            )

    def _initdb(self) -> None:
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        if self._as_postgres:
            os.chown(password_file, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            ROLE,
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        password_file.unlink()

    def start(self) -> None:
        """Start (again) on the same port and data folder; waits until it accepts."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=60"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
        )
        if not any(db == ROLE for db in self._databases()):
            self.create_database(ROLE)

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: connections are cut, the data stays."""
        if self.postmaster_pid is None:
            return
        self._run(str(self.bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def close(self) -> None:
        """Stop and remove everything; idempotent."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if self.data.exists():
                self.stop()
        pid = self.postmaster_pid
        if pid is not None:  # a server pg_ctl could not stop: end it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- state ---------------------------------------------------------------------------
    @property
    def postmaster_pid(self) -> int | None:
        """The server's pid while it runs."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    # --- databases -----------------------------------------------------------------------
    def url_for(self, database: str) -> str:
        return f"postgresql://{ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(ROLE)

    def _databases(self) -> list[str]:
        import psycopg

        with psycopg.connect(self.url_for("postgres"), autocommit=True) as connection:
            rows = connection.execute("SELECT datname FROM pg_database").fetchall()
        return [str(row[0]) for row in rows]

    def create_database(self, name: str) -> str:
        """Create database ``name`` (letters, digits, ``_``); return its URL."""
        import psycopg

        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the whole run (per xdist worker). Tests must not stop it."""
    server = PostgresServer.create()
    try:
        yield server
    finally:
        pid = server.postmaster_pid
        server.close()
    assert not wait_gone({pid} if pid else set()), f"PostgreSQL {pid} outlived its fixture"


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the shared server."""
    return postgres_server.create_database(f"t_{secrets.token_hex(6)}")


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, which it may stop and start."""
    server = PostgresServer.create()
    try:
        yield server
    finally:
        pid = server.postmaster_pid
        server.close()
    assert not wait_gone({pid} if pid else set()), f"PostgreSQL {pid} outlived its fixture"
