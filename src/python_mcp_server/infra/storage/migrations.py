"""Versioned schema migrations, one ``schema_migrations`` table for every component.

Each store names its component (``history``, ``audit``, ...) and lists its ``Migration``
values, numbered from 1 without gaps. ``apply_migrations`` runs inside one transaction that
the backend has locked against other processes (PostgreSQL: an advisory lock; SQLite: the
write lock of ``BEGIN IMMEDIATE``), so replicas starting together migrate once: the second
finds the versions recorded and applies nothing. A migration's steps are either SQL
statements or a function of the transaction (for steps that must look first, such as
adding a column to a table that may already have it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from python_mcp_server.errors import StorageError
from python_mcp_server.infra.storage.transaction import Transaction

logger = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]
Step = tuple[str, ...] | Callable[[Transaction], None]

VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied TEXT NOT NULL,
    PRIMARY KEY (component, version)
)"""


@dataclass(frozen=True)
class Migration:
    """One numbered change of a component's schema, spelled for each backend."""

    version: int
    name: str
    sqlite: Step
    postgresql: Step

    def step(self, dialect: Dialect) -> Step:
        return self.sqlite if dialect == "sqlite" else self.postgresql


def check_numbering(component: str, migrations: Sequence[Migration]) -> None:
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise StorageError(f"migrations of {component!r} must be numbered 1..n: {versions}")


def apply_migrations(
    tx: Transaction, dialect: Dialect, component: str, migrations: Sequence[Migration]
) -> list[int]:
    """Apply the component's migrations not yet recorded; return the versions applied.

    Call it in a transaction the backend has locked (see ``Database.migrate``).
    """
    check_numbering(component, migrations)
    tx.execute(VERSIONS_TABLE)
    rows = tx.fetchall("SELECT version FROM schema_migrations WHERE component = ?", (component,))
    done = {int(row[0]) for row in rows}
    newest = max(done, default=0)
    if newest > len(migrations):
        logger.warning(
            "the %s schema is at version %d, newer than this server knows (%d)",
            component,
            newest,
            len(migrations),
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        step = migration.step(dialect)
        if callable(step):
            step(tx)
        else:
            for statement in step:
                tx.execute(statement)
        tx.execute(
            "INSERT INTO schema_migrations (component, version, name, applied) VALUES (?, ?, ?, ?)",
            (
                component,
                migration.version,
                migration.name,
                datetime.now(timezone.utc).isoformat(),
            ),
        )
        applied.append(migration.version)
    if applied:
        logger.info("database schema %s: applied migration(s) %s", component, applied)
    return applied
