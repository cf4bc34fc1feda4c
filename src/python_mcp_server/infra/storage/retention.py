"""Keeping only a table's newest rows, in one statement whose cost does not grow with the
table until the table can hold more than it keeps.

``DELETE ... WHERE id <= (SELECT id ... ORDER BY id DESC LIMIT 1 OFFSET keep)`` keeps the
newest ``keep`` rows exactly, but its subquery walks ``keep`` index entries, or the whole
table while it holds fewer: written after every insert, that walk grew with the table (5 ms
per execution at 50,000 audit rows on a loaded machine). Ids are distinct integers, so a
table whose newest and oldest ids are less than ``keep`` apart cannot hold more than
``keep`` rows: the statement first compares those two ids (two index look-ups) and walks
only when they are farther apart. Either way it deletes exactly what the plain statement
deletes. ``CASE`` evaluates its branch lazily in SQLite and PostgreSQL alike.
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


def keep_newest_params(keep: int, where_params: tuple[object, ...] = ()) -> tuple[object, ...]:
    """The parameters of ``keep_newest``'s statement, in their order."""
    return (*where_params, *where_params, keep, *where_params, keep, *where_params)
