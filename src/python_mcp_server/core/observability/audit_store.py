"""Audit records in the server's database: the ``audit`` table, shared by replicas.

Every record ``audit.py`` logs (executions, installs) is also queued here when the store
is given to it as its sink. A row holds the record's time, event, principal, session and
execution ids for querying, and the whole record as its JSON line. ``event_key`` is unique
(``execution:<id>`` for an execution, a random one per install), so a write retried after a
lost acknowledgement lands once. The newest ``max_rows`` are kept (0: none stored; the
JSON-lines log is then the only trail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from python_mcp_server.core.observability.audit import audit_line
from python_mcp_server.infra.storage.database import Database
from python_mcp_server.infra.storage.migrations import Migration, spelled
from python_mcp_server.infra.storage.retention import keep_newest, keep_newest_params, slack_for
from python_mcp_server.infra.storage.transaction import Transaction

COMPONENT = "audit"
_KEEP_NEWEST = keep_newest("audit")

_COLUMNS = """
    event_key TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    event TEXT NOT NULL,
    principal TEXT,
    session_id TEXT,
    execution_id TEXT,
    record TEXT NOT NULL
)"""
_TABLE = "CREATE TABLE IF NOT EXISTS audit (id {id}," + _COLUMNS
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS audit_by_principal ON audit (principal, id)",
    "CREATE INDEX IF NOT EXISTS audit_by_event ON audit (event, id)",
)
MIGRATIONS = (
    Migration(
        1,
        "audit",
        (spelled("sqlite", _TABLE), *_INDEXES),
        (spelled("postgresql", _TABLE), *_INDEXES),
    ),
)


@dataclass(frozen=True)
class AuditConfig:
    """How many audit rows are kept."""

    max_rows: int = 100_000


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class AuditStore:
    """The ``audit`` table; an ``AuditSink``."""

    def __init__(self, database: Database, config: AuditConfig) -> None:
        self.config = config
        self._db = database

    async def open(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    def record_later(self, key: str, record: dict[str, Any]) -> None:
        """Queue one record (off the response path; written once, even if retried)."""
        keep = self.config.max_rows
        if keep <= 0:
            return
        row = (
            key,
            str(record.get("time", "")),
            str(record.get("event", "")),
            _text(record.get("principal")),
            _text(record.get("session_id")),
            _text(record.get("execution_id")),
            audit_line(record),
        )

        def write(tx: Transaction) -> None:
            tx.execute(
                "INSERT INTO audit (event_key, time, event, principal, session_id, "
                "execution_id, record) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (event_key) DO NOTHING",
                row,
            )
            tx.execute(_KEEP_NEWEST, keep_newest_params(keep, slack=slack_for(keep)))

        self._db.enqueue(write)

    async def query(
        self, *, limit: int, event: str | None = None, principal: str | None = None
    ) -> list[str]:
        """The newest ``limit`` records (as JSON lines), newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if event is not None:
            clauses.append("event = ?")
            params.append(event)
        if principal is not None:
            clauses.append("principal = ?")
            params.append(principal)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = await self._db.fetch(
            f"SELECT record FROM audit{where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [str(row[0]) for row in rows]
