"""The session registry: which sessions exist, shared by every replica through the database.

One row per session (scope, principal, session id): its kernel id, environment,
description, created and last-used times. Replicas on one gateway that share a database
(``MCP_DATABASE_URL``) list the same sessions from these rows, and the row is the claim
that decides which replica starts a session's kernel:

- ``claim`` inserts the row as ``creating`` if it is absent, in one transaction (the
  database's unique key settles two replicas inserting at once). The replica whose insert
  went in starts the kernel and then ``confirm``s the row (``ready``); any other replica
  sees the row and attaches, or reports SESSION_EXISTS when it was asked to create. A
  claim older than ``claim_timeout`` (its replica died mid-start) may be taken over.
- ``remove`` deletes the row when the session is deleted (or its kernel is found gone).
- ``touch`` records use off the response path: touches are coalesced per session and
  written at most once every ``touch_interval`` seconds through the database's queue.

Every other call that cannot reach the database raises ``DatabaseUnavailableError``
(DATABASE_UNAVAILABLE): a session call never guesses, so no second kernel is started.
``scope`` keeps deployments sharing one database apart (the gateway namespace).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal

from python_mcp_server.infra.storage.database import Database
from python_mcp_server.infra.storage.migrations import Migration
from python_mcp_server.infra.storage.transaction import Transaction

logger = logging.getLogger(__name__)

COMPONENT = "session_registry"
_TABLE = """
CREATE TABLE IF NOT EXISTS session_registry (
    scope TEXT NOT NULL,
    owner TEXT NOT NULL,
    session_id TEXT NOT NULL,
    kernel_id TEXT NOT NULL,
    environment TEXT,
    description TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    claim TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used TEXT NOT NULL,
    PRIMARY KEY (scope, owner, session_id)
)"""
MIGRATIONS = (Migration(1, "session registry", (_TABLE,), (_TABLE,)),)

_COLUMNS = (
    "owner, session_id, kernel_id, environment, description, state, claim, claimed_at, "
    "created_at, last_used"
)

RecordState = Literal["creating", "ready"]


def _stamp(moment: datetime | None = None) -> str:
    """A UTC time as fixed-width text (sorts as it reads)."""
    return (moment or datetime.now(timezone.utc)).isoformat(timespec="microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class SessionRecord:
    """One session as the registry holds it."""

    owner: str
    session_id: str
    kernel_id: str
    environment: str | None
    description: str
    state: RecordState
    claim: str
    claimed_at: datetime
    created_at: datetime
    last_used: datetime

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> SessionRecord:
        state: RecordState = "ready" if row[5] == "ready" else "creating"
        return cls(
            owner=str(row[0]),
            session_id=str(row[1]),
            kernel_id=str(row[2]),
            environment=None if row[3] is None else str(row[3]),
            description=str(row[4]),
            state=state,
            claim=str(row[6]),
            claimed_at=_parse(str(row[7])),
            created_at=_parse(str(row[8])),
            last_used=_parse(str(row[9])),
        )


@dataclass(frozen=True)
class Claim:
    """The outcome of ``claim``: ``won`` means this replica starts the kernel."""

    won: bool
    record: SessionRecord


@dataclass(frozen=True)
class RegistryConfig:
    """How long a claim may stay unconfirmed, and how often use is written."""

    #: A ``creating`` row older than this belongs to a replica that died mid-start.
    claim_timeout: float = 150.0
    touch_interval: float = 1.0


class SessionRegistry:
    """The rows of one scope's sessions in the shared (or embedded) database."""

    def __init__(self, db: Database, scope: str, config: RegistryConfig) -> None:
        self._db = db
        self.scope = scope
        self._config = config
        #: Sessions used since the last write, with when (coalesced touches).
        self._touched: dict[tuple[str, str], str] = {}
        self._flush: asyncio.TimerHandle | None = None

    @property
    def database(self) -> Database:
        return self._db

    async def open(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    def close(self) -> None:
        """Queue the last touches (the database's owner writes them as it closes)."""
        if self._flush is not None:
            self._flush.cancel()
        self._write_touches()

    # --- claiming ------------------------------------------------------------------------
    async def claim(
        self,
        owner: str,
        session_id: str,
        *,
        kernel_id: str,
        environment: str | None,
        description: str,
    ) -> Claim:
        """Insert the session's row as ``creating`` unless one exists; say who won."""
        token = secrets.token_hex(8)
        now = datetime.now(timezone.utc)
        stale_before = _stamp(
            datetime.fromtimestamp(now.timestamp() - self._config.claim_timeout, timezone.utc)
        )
        stamps = (_stamp(now),) * 3
        scope = self.scope
        where = (scope, owner, session_id)

        def work(tx: Transaction) -> Claim:
            inserted = tx.execute(
                f"INSERT INTO session_registry (scope, {_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?) "
                "ON CONFLICT (scope, owner, session_id) DO NOTHING",
                (scope, owner, session_id, kernel_id, environment, description, token, *stamps),
            )
            if inserted != 1:  # a row exists: take it over only if its claim went stale
                inserted = tx.execute(
                    "UPDATE session_registry SET kernel_id = ?, environment = ?, "
                    "description = ?, claim = ?, claimed_at = ?, created_at = ?, "
                    "last_used = ? WHERE scope = ? AND owner = ? AND session_id = ? "
                    "AND state = 'creating' AND claimed_at < ?",
                    (kernel_id, environment, description, token, *stamps, *where, stale_before),
                )
            record = self._select(tx, owner, session_id)
            assert record is not None
            return Claim(won=inserted == 1 and record.claim == token, record=record)

        return await self._db.transaction(work)

    async def reclaim(self, record: SessionRecord) -> Claim | None:
        """Claim a ``ready`` session again, to start its kernel anew (the gateway gave it
        up); None when another replica did first, or the row changed."""
        token = secrets.token_hex(8)
        stamp = _stamp()
        changed = await self._db.transaction(
            lambda tx: tx.execute(
                "UPDATE session_registry SET state = 'creating', claim = ?, claimed_at = ? "
                "WHERE scope = ? AND owner = ? AND session_id = ? AND claim = ? "
                "AND state = 'ready'",
                (token, stamp, self.scope, record.owner, record.session_id, record.claim),
            )
        )
        if changed != 1:
            return None
        claimed = replace(record, state="creating", claim=token, claimed_at=_parse(stamp))
        return Claim(won=True, record=claimed)

    async def confirm(self, claim: Claim) -> bool:
        """Mark a won claim ``ready`` (its kernel answers); False when the row was deleted
        (the session was deleted meanwhile) or taken over."""
        record = claim.record
        return bool(
            await self._db.transaction(
                lambda tx: tx.execute(
                    "UPDATE session_registry SET state = 'ready' WHERE scope = ? AND owner = ? "
                    "AND session_id = ? AND claim = ?",
                    (self.scope, record.owner, record.session_id, record.claim),
                )
            )
        )

    async def drop(self, record: SessionRecord) -> bool:
        """Delete this very row (a failed start's claim, a row whose kernel is gone), not a
        newer one that replaced it; True when it was there."""
        return bool(
            await self._db.transaction(
                lambda tx: tx.execute(
                    "DELETE FROM session_registry WHERE scope = ? AND owner = ? "
                    "AND session_id = ? AND claim = ?",
                    (self.scope, record.owner, record.session_id, record.claim),
                )
            )
        )

    async def record_existing(self, owner: str, session_id: str, kernel_id: str) -> None:
        """Register a session whose kernel exists but has no row (started before the
        registry held it); an existing row is kept."""
        stamps = (_stamp(),) * 3
        await self._db.transaction(
            lambda tx: tx.execute(
                f"INSERT INTO session_registry (scope, {_COLUMNS}) "
                "VALUES (?, ?, ?, ?, NULL, '', 'ready', ?, ?, ?, ?) "
                "ON CONFLICT (scope, owner, session_id) DO NOTHING",
                (self.scope, owner, session_id, kernel_id, secrets.token_hex(8), *stamps),
            )
        )

    # --- reading ---------------------------------------------------------------------------
    def _select(self, tx: Transaction, owner: str, session_id: str) -> SessionRecord | None:
        row = tx.fetchone(
            f"SELECT {_COLUMNS} FROM session_registry WHERE scope = ? AND owner = ? "
            "AND session_id = ?",
            (self.scope, owner, session_id),
        )
        return None if row is None else SessionRecord.from_row(row)

    async def get(self, owner: str, session_id: str) -> SessionRecord | None:
        return await self._db.transaction(lambda tx: self._select(tx, owner, session_id))

    async def records(self, owner: str) -> list[SessionRecord]:
        """The principal's sessions, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM session_registry WHERE scope = ? AND owner = ? "
            "ORDER BY created_at, session_id",
            (self.scope, owner),
        )
        return [SessionRecord.from_row(row) for row in rows]

    async def wait_settled(
        self, owner: str, session_id: str, timeout: float, poll: float = 0.05
    ) -> SessionRecord | None:
        """The row once no replica is creating it any more (None: no row), waiting at most
        ``timeout`` seconds for another replica's start to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            record = await self.get(owner, session_id)
            if record is None or record.state == "ready" or loop.time() >= deadline:
                return record
            await asyncio.sleep(poll)

    # --- ending and use ------------------------------------------------------------------
    async def remove(self, owner: str, session_id: str) -> bool:
        """Delete the session's row; True when there was one."""
        self._touched.pop((owner, session_id), None)
        return bool(
            await self._db.transaction(
                lambda tx: tx.execute(
                    "DELETE FROM session_registry WHERE scope = ? AND owner = ? AND session_id = ?",
                    (self.scope, owner, session_id),
                )
            )
        )

    def touch(self, owner: str, session_id: str) -> None:
        """Note a use; written later, with other uses, off the response path."""
        self._touched[(owner, session_id)] = _stamp()
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(self._config.touch_interval, self._write_touches)

    def _write_touches(self) -> None:
        self._flush = None
        touched, self._touched = self._touched, {}
        if not touched or not self._db.is_open:
            return
        scope = self.scope
        updates = [(stamp, scope, owner, sid, stamp) for (owner, sid), stamp in touched.items()]

        def work(tx: Transaction) -> None:
            for update in updates:  # never backwards: a replay or a later touch elsewhere
                tx.execute(
                    "UPDATE session_registry SET last_used = ? WHERE scope = ? AND owner = ? "
                    "AND session_id = ? AND last_used < ?",
                    update,
                )

        self._db.enqueue(work)
