"""Execution history: every execution recorded in SQLite in the state folder.

``HistoryStore`` keeps the newest ``max_history`` executions (0 turns recording off) and
survives server restarts; it runs on the database's own thread, never on the event loop.
``HistoryHook`` records each finished execution after it ran.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.sessions.owners import DEFAULT_OWNER
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.errors import StorageError
from python_mcp_server.infra.storage.sqlite import SqliteDatabase
from python_mcp_server.models.history import HistoryEntry

logger = logging.getLogger(__name__)

#: Characters of stdout and stderr kept per execution.
EXCERPT_CHARS = 2000
#: Characters of code kept per execution.
CODE_CHARS = 100_000
#: Where the hook keeps the start time between ``before`` and ``after``.
STARTED_NOTE = "history_started"

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    duration REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_session ON executions (session_id, id);
CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status, id);
"""
#: Databases written before sessions had owners gain the column (their rows: ``default``).
ADD_OWNER = "ALTER TABLE executions ADD COLUMN owner TEXT NOT NULL DEFAULT 'default'"

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
    """Where the history lives and how much of it is kept."""

    path: Path
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


def _to_entry(row: sqlite3.Row | tuple[Any, ...]) -> HistoryEntry:
    values = dict(zip(COLUMNS, row, strict=True))
    return HistoryEntry.model_validate(values)


class HistoryStore:
    """The history database."""

    def __init__(self, config: HistoryConfig) -> None:
        self.config = config
        self._db = SqliteDatabase(config.path, SCHEMA)
        #: Records that could not be written (a full disk, a broken database), and why.
        self.write_failures = 0
        self.last_write_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self._db.is_open

    async def open(self) -> None:
        await self._db.open()

        def add_owner(db: sqlite3.Connection) -> None:
            names = {row[1] for row in db.execute("PRAGMA table_info(executions)")}
            if "owner" not in names:
                with db:
                    db.execute(ADD_OWNER)

        await self._db.run(add_owner)

    async def aclose(self) -> None:
        await self._db.aclose()

    def record_later(self, entry: HistoryEntry, owner: str = DEFAULT_OWNER) -> None:
        """Queue one execution for storage (oldest beyond the retention limit dropped).

        The caller does not wait for the disk: writes happen in order on the database
        thread, a later query sees them, and closing the store finishes them first.
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

        def write(db: sqlite3.Connection) -> None:
            try:
                with db:
                    db.execute(
                        f"INSERT INTO executions (owner, {', '.join(COLUMNS)}) "
                        f"VALUES ({', '.join('?' * (len(COLUMNS) + 1))})",
                        row,
                    )
                    db.execute(
                        "DELETE FROM executions WHERE id <= "
                        "(SELECT id FROM executions ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (keep,),
                    )
            except sqlite3.Error as exc:
                self.write_failures += 1
                self.last_write_error = f"history write failed: {exc}"
                raise  # the database thread logs it

        self._db.submit(write)

    async def record(self, entry: HistoryEntry, owner: str = DEFAULT_OWNER) -> None:
        """Store one execution and wait until it is written."""
        self.record_later(entry, owner)
        await self._db.run(lambda _db: None)

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

        def read(db: sqlite3.Connection) -> tuple[list[HistoryEntry], int]:
            rows = db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM executions{where} ORDER BY id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
            total = db.execute(f"SELECT COUNT(*) FROM executions{where}", params).fetchone()[0]
            return [_to_entry(row) for row in rows], int(total)

        return await self._db.run(read)

    async def clear(self, session_id: str | None = None, owner: str | None = None) -> int:
        """Delete the history of one session, or all of it (``owner``: of that principal);
        return how many were deleted."""
        where, params = _where(owner, session_id, None)

        def delete(db: sqlite3.Connection) -> int:
            with db:
                return int(db.execute(f"DELETE FROM executions{where}", params).rowcount)

        return await self._db.run(delete)

    async def count(self) -> int:
        """Stored executions (also proves the database answers)."""

        def read(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT COUNT(*) FROM executions").fetchone()[0])

        return await self._db.run(read)


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
            self._store.write_failures += 1
            self._store.last_write_error = f"history write failed: {exc.message}"
            logger.warning("execution %s was not recorded: %s", entry.execution_id, exc)
