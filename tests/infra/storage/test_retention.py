"""The newest-rows trim deletes exactly what the plain OFFSET statement deletes: tables
under and over their limit, with gaps in their ids, whole or per session (real SQLite);
with a slack, it trims to the same rows once the table may hold more than limit + slack,
and never leaves more than that."""

from __future__ import annotations

import random
import sqlite3

import pytest

from python_mcp_server.infra.storage.retention import keep_newest, keep_newest_params

PLAIN = "DELETE FROM t WHERE id <= (SELECT id FROM t ORDER BY id DESC LIMIT 1 OFFSET ?)"
PLAIN_SESSION = (
    "DELETE FROM t WHERE session = ? AND id <= "
    "(SELECT id FROM t WHERE session = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)


def table(rows: int, gaps: int, seed: int) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, session TEXT NOT NULL)")
    db.execute("CREATE INDEX t_by_session ON t (session, id)")
    chooser = random.Random(seed)
    db.executemany(
        "INSERT INTO t (session) VALUES (?)", [(chooser.choice("ab"),) for _ in range(rows)]
    )
    for row_id in chooser.sample(range(1, rows + 1), min(gaps, rows)):
        db.execute("DELETE FROM t WHERE id = ?", (row_id,))
    return db


def ids(db: sqlite3.Connection) -> list[tuple[int, str]]:
    return db.execute("SELECT id, session FROM t ORDER BY id").fetchall()


@pytest.mark.parametrize("rows", [0, 1, 5, 10, 11, 40])
@pytest.mark.parametrize("gaps", [0, 3, 15])
@pytest.mark.parametrize("keep", [1, 5, 10])
def test_deletes_what_the_plain_statement_deletes(rows: int, gaps: int, keep: int) -> None:
    ours, plain = table(rows, gaps, rows * 100 + gaps), table(rows, gaps, rows * 100 + gaps)
    ours.execute(keep_newest("t"), keep_newest_params(keep))
    plain.execute(PLAIN, (keep,))
    assert ids(ours) == ids(plain)
    assert len(ids(ours)) <= keep

    ours, plain = table(rows, gaps, rows + gaps), table(rows, gaps, rows + gaps)
    ours.execute(keep_newest("t", "session = ?"), keep_newest_params(keep, ("a",)))
    plain.execute(PLAIN_SESSION, ("a", "a", keep))
    assert ids(ours) == ids(plain)
    assert len([row for row in ids(ours) if row[1] == "a"]) <= keep


@pytest.mark.parametrize("rows", [0, 5, 10, 12, 13, 14, 40])
@pytest.mark.parametrize("gaps", [0, 3, 15])
@pytest.mark.parametrize(("keep", "slack"), [(10, 3), (5, 1), (1, 0)])
def test_with_a_slack_it_trims_to_the_same_rows_or_not_at_all(
    rows: int, gaps: int, keep: int, slack: int
) -> None:
    seed = rows * 7 + gaps
    ours, plain = table(rows, gaps, seed), table(rows, gaps, seed)
    before = ids(ours)
    ours.execute(keep_newest("t"), keep_newest_params(keep, slack=slack))
    plain.execute(PLAIN, (keep,))
    after = ids(ours)
    assert after in (before, ids(plain))  # untouched, or exactly the newest ``keep``
    assert len(after) <= keep + slack
    if before and before[-1][0] - before[0][0] >= keep + slack:
        assert after == ids(plain)  # the ids are far enough apart: trimmed
    if gaps == 0 and len(before) <= keep + slack:
        assert after == before  # within the slack: no walk, nothing deleted


def test_a_full_table_walks_once_every_slack_inserts() -> None:
    """Insert after insert into a table at its limit: it grows to limit + slack, then is
    trimmed back to the limit, again and again."""
    db = table(0, 0, 0)
    sizes = []
    for _ in range(60):
        db.execute("INSERT INTO t (session) VALUES ('a')")
        db.execute(keep_newest("t"), keep_newest_params(10, slack=4))
        sizes.append(len(ids(db)))
    assert sizes[:14] == list(range(1, 15))  # under limit + slack: nothing deleted
    assert sizes[14:] == ([10, 11, 12, 13, 14] * 10)[:46]  # trimmed to 10 every 5 inserts
