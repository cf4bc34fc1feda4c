"""``open_database``: the backend a URL names (empty: SQLite in the state folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from python_mcp_server.errors import InvalidInputError
from python_mcp_server.infra.storage.database import Database
from python_mcp_server.infra.storage.sqlite_backend import SqliteBackend
from python_mcp_server.infra.storage.urls import is_postgres_url, mask_url


@dataclass(frozen=True)
class DatabaseConfig:
    """Which database, and how it is used."""

    #: ``""``: the SQLite file ``sqlite_path``; ``postgresql://...``: that database.
    url: str
    sqlite_path: Path
    pool_size: int = 4
    timeout: float = 5.0
    queue_limit: int = 10_000


def make_database(config: DatabaseConfig) -> Database:
    """Build (not open) the database the configuration names."""
    if not config.url:
        return SqliteBackend(config.sqlite_path, queue_limit=config.queue_limit)
    if is_postgres_url(config.url):
        from python_mcp_server.infra.storage.postgresql import PostgresBackend

        return PostgresBackend(
            config.url,
            pool_size=config.pool_size,
            timeout=config.timeout,
            queue_limit=config.queue_limit,
        )
    raise InvalidInputError(
        f"MCP_DATABASE_URL {mask_url(config.url)!r}: only postgresql:// URLs (or empty, for "
        "SQLite in the state folder) are supported"
    )
