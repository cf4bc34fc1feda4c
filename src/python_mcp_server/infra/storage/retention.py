"""Keeping only a table's newest rows, in one statement whose cost does not grow with the
table until the table can hold more than it keeps.

``DELETE ... WHERE id <= (SELECT id ... ORDER BY id DESC LIMIT 1 OFFSET keep)`` keeps the
newest ``keep`` rows exactly, but its subquery walks ``keep`` index entries, or the whole
table while it holds fewer: written after every insert, that walk grew with the table (5 ms
per execution at 50,000 audit rows on a loaded machine). Ids are distinct integers, so a
table whose newest and oldest ids are less than ``keep`` apart cannot hold more than
``keep`` rows: the statement first compares those two ids (two index look-ups) and walks
only when they are farther apart. ``CASE`` evaluates its branch lazily in SQLite and
PostgreSQL alike.

A full table would still walk ``keep`` entries on every insert (8 to 10 ms per execution
at the audit's default 100,000 rows). With a ``slack``, the walk waits until the ids are
``keep + slack`` apart, then deletes down to exactly the newest ``keep``: the table holds
at most ``keep + slack`` rows, and a full table walks once every ``slack`` inserts. With
no slack it deletes exactly what the plain statement deletes.
"""

from __future__ import annotations


def keep_newest(table: str, where: str = "") -> str:
    """A DELETE keeping the newest ``keep`` rows of ``table`` (by ``id``), or of the rows
    matching ``where`` (a condition with its own ``?`` parameters); its parameters come
    from ``keep_newest_params``. ``table`` and ``where`` are constants of the caller, never
    outside input."""
    scope = f" WHERE {where}" if where else ""
    both = f" AND {where}" if where else ""
    return (
        f"DELETE FROM {table} WHERE id <= (SELECT CASE "
        f"WHEN (SELECT MAX(id) FROM {table}{scope}) - (SELECT MIN(id) FROM {table}{scope}) >= ? "
        f"THEN (SELECT id FROM {table}{scope} ORDER BY id DESC LIMIT 1 OFFSET ?) END){both}"
    )


def keep_newest_params(
    keep: int, where_params: tuple[object, ...] = (), slack: int = 0
) -> tuple[object, ...]:
    """The parameters of ``keep_newest``'s statement, in their order: keep the newest
    ``keep`` rows, trimming only once the table may hold more than ``keep + slack``."""
    return (*where_params, *where_params, keep + slack, *where_params, keep, *where_params)


def slack_for(keep: int) -> int:
    """The slack of a large table's trim: 1 % of what it keeps (none below 100 rows)."""
    return keep // 100
