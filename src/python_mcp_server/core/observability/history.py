"""Execution history: every execution recorded in the server's database.

``HistoryStore`` keeps the newest ``max_history`` executions (0 turns recording off) in the
``executions`` table of the server's ``Database`` (SQLite in the state folder, or the
shared PostgreSQL of ``MCP_DATABASE_URL``, where every replica sees the same rows). Rows
are written off the response path through the database's write queue, idempotently (one
row per execution id); reads and clearing wait for the database and fail with
``DATABASE_UNAVAILABLE`` while it is away. ``HistoryHook`` records each finished execution
after it ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.owners import DEFAULT_OWNER
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.errors import StorageError
from python_mcp_server.infra.storage.database import Database
from python_mcp_server.infra.storage.migrations import Migration, spelled
from python_mcp_server.infra.storage.retention import keep_newest, keep_newest_params, slack_for
from python_mcp_server.infra.storage.transaction import Transaction
from python_mcp_server.models.history import HistoryEntry

logger = logging.getLogger(__name__)

#: Characters of stdout and stderr kept per execution.
EXCERPT_CHARS = 2000
#: Characters of code kept per execution.
CODE_CHARS = 100_000
#: Where the hook keeps the start time between ``before`` and ``after``.
STARTED_NOTE = "history_started"

COMPONENT = "history"

_TABLE = """
CREATE TABLE IF NOT EXISTS executions (
    id {id},
    owner TEXT NOT NULL DEFAULT 'default',
    execution_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    code TEXT NOT NULL,
    status TEXT NOT NULL,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    error TEXT,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    duration {real} NOT NULL
)"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS executions_by_session ON executions (session_id, id)",
    "CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status, id)",
)
#: Databases written before sessions had owners gain the column (their rows: ``default``).
ADD_OWNER = "ALTER TABLE executions ADD COLUMN owner TEXT NOT NULL DEFAULT 'default'"
#: One row per execution: a write retried after a lost acknowledgement is not doubled.
_UNIQUE_EXECUTION = (
    "DELETE FROM executions WHERE id NOT IN (SELECT MIN(id) FROM executions GROUP BY execution_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS executions_by_execution_id ON executions (execution_id)",
)


def _sqlite_executions(tx: Transaction) -> None:
    """The table, also over a file from before the migrations (owner column added)."""
    tx.execute(spelled("sqlite", _TABLE))
    names = {row[1] for row in tx.fetchall("PRAGMA table_info(executions)")}
    if "owner" not in names:
        tx.execute(ADD_OWNER)
    for statement in _INDEXES:
        tx.execute(statement)


MIGRATIONS = (
    Migration(1, "executions", _sqlite_executions, (spelled("postgresql", _TABLE), *_INDEXES)),
    Migration(2, "unique execution ids", _UNIQUE_EXECUTION, _UNIQUE_EXECUTION),
)

_KEEP_NEWEST = keep_newest("executions")

COLUMNS = (
    "execution_id",
    "session_id",
    "code",
    "status",
    "stdout",
    "stderr",
    "error",
    "started",
    "finished",
    "duration",
)


@dataclass(frozen=True)
class HistoryConfig:
    """How much history is kept."""

    max_history: int


def _where(owner: str | None, session_id: str | None, status: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if owner is not None:
        clauses.append("owner = ?")
        params.append(owner)
    if session_id is not None:
        clauses.append("session_id = ?")
        params.append(session_id)
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _to_entry(row: tuple[Any, ...]) -> HistoryEntry:
    values = dict(zip(COLUMNS, row, strict=True))
    return HistoryEntry.model_validate(values)


class HistoryStore:
    """The ``executions`` table."""

    def __init__(self, database: Database, config: HistoryConfig) -> None:
        self.config = config
        self._db = database
        self._opened = False

    @property
    def is_open(self) -> bool:
        return self._opened and self._db.is_open

    @property
    def write_failures(self) -> int:
        """Records that could not be written (a full disk, a broken database)."""
        return self._db.write_failures

    @property
    def last_write_error(self) -> str | None:
        return self._db.last_write_error

    def database_problem(self) -> str | None:
        """What health should say while queued records wait for the database, if anything."""
        if self._db.reachable:
            return None
        return (
            f"the database {self._db.display} is unreachable; {self._db.queued} record(s) "
            "wait to be written"
        )

    async def open(self) -> None:
        """Create or upgrade the table (the database is opened by its owner)."""
        await self._db.migrate(COMPONENT, MIGRATIONS)
        self._opened = True

    async def aclose(self) -> None:
        """Wait for this store's queued writes; the database is closed by its owner."""
        if self._opened and self._db.is_open:
            await self._db.flush()
        self._opened = False

    def record_later(self, entry: HistoryEntry, owner: str = DEFAULT_OWNER) -> None:
        """Queue one execution for storage (oldest beyond the retention limit dropped).

        The caller does not wait for the database: a later query from this server sees
        the row, and closing the database writes what is queued first.
        """
        keep = self.config.max_history
        if keep <= 0:
            return
        row = (
            owner,
            entry.execution_id,
            entry.session_id,
            entry.code[:CODE_CHARS],
            entry.status,
            entry.stdout[:EXCERPT_CHARS],
            entry.stderr[:EXCERPT_CHARS],
            entry.error,
            entry.started.isoformat(),
            entry.finished.isoformat(),
            entry.duration,
        )

        def write(tx: Transaction) -> None:
            tx.execute(
                f"INSERT INTO executions (owner, {', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))}) "
                "ON CONFLICT (execution_id) DO NOTHING",
                row,
            )
            tx.execute(_KEEP_NEWEST, keep_newest_params(keep, slack=slack_for(keep)))

        self._db.enqueue(write)

    async def record(self, entry: HistoryEntry, owner: str = DEFAULT_OWNER) -> None:
        """Store one execution and wait until it is written."""
        self.record_later(entry, owner)
        await self._db.flush()

    async def query(
        self,
        *,
        limit: int,
        session_id: str | None = None,
        status: str | None = None,
        owner: str | None = None,
    ) -> tuple[list[HistoryEntry], int]:
        """The newest ``limit`` matching executions (``owner``: only that principal's),
        and how many match in all."""
        where, params = _where(owner, session_id, status)

        def read(tx: Transaction) -> tuple[list[HistoryEntry], int]:
            # One statement, so one snapshot: PostgreSQL reads each statement of a
            # transaction at its own, and writes landing between a listing and a count
            # made a listing of 1 entry with a total of 5. No row matching: none to count.
            rows = tx.fetchall(
                f"SELECT {', '.join(COLUMNS)}, (SELECT COUNT(*) FROM executions{where}) "
                f"FROM executions{where} ORDER BY id DESC LIMIT ?",
                [*params, *params, limit],
            )
            total = int(rows[0][-1]) if rows else 0
            return [_to_entry(row[:-1]) for row in rows], total

        return await self._db.transaction(read)

    async def clear(self, session_id: str | None = None, owner: str | None = None) -> int:
        """Delete the history of one session, or all of it (``owner``: of that principal);
        return how many were deleted."""
        where, params = _where(owner, session_id, None)

        def delete(tx: Transaction) -> int:
            return tx.execute(f"DELETE FROM executions{where}", params)

        return await self._db.transaction(delete)

    async def count(self) -> int:
        """Stored executions (also proves the database answers)."""
        rows = await self._db.fetch("SELECT COUNT(*) FROM executions")
        return int(rows[0][0])


class HistoryHook:
    """ExecutionHook: records every execution attempt, refused or failed ones too."""

    records_attempts = True

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        request.notes[STARTED_NOTE] = datetime.now(timezone.utc)

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        result = outcome.result
        finished = datetime.now(timezone.utc)
        started = request.notes.get(STARTED_NOTE)
        if not isinstance(started, datetime):
            started = finished - timedelta(seconds=result.execution_time)
        error = f"{result.error.ename}: {result.error.evalue}" if result.error else None
        entry = HistoryEntry(
            execution_id=result.execution_id,
            session_id=result.session_id,
            code=request.code,
            status=result.status,
            stdout=result.stdout[:EXCERPT_CHARS],
            stderr=result.stderr[:EXCERPT_CHARS],
            error=error,
            started=started,
            finished=finished,
            duration=result.execution_time,
        )
        try:
            self._store.record_later(entry, session.owner)
        except StorageError as exc:  # the code ran; a history failure must not hide that
            logger.warning("execution %s was not recorded: %s", entry.execution_id, exc)
