"""Storage: the ``Database`` seam and its backends (SQLite embedded, PostgreSQL shared).

For a new store (the session registry, say), follow ``core/observability/history.py``:

1. list your tables as ``Migration`` values (``migrations.py``), numbered from 1, each
   spelled for SQLite and PostgreSQL, under a component name of your own;
2. take the server's one ``Database`` (``Services.database``) in your constructor and call
   ``await database.migrate("your_component", MIGRATIONS)`` in your ``open``;
3. read and write with ``database.transaction(work)`` / ``database.fetch(sql, params)``
   (``?`` placeholders, the SQL both dialects speak; ``database.dialect`` for the rest),
   and queue off-path writes with ``database.enqueue(work)``, idempotent by a unique key;
4. expect ``DatabaseUnavailableError`` (``DATABASE_UNAVAILABLE``) when PostgreSQL is away.

Files: ``database.py`` (the interface), ``transaction.py`` (what work receives),
``migrations.py``, ``write_queue.py``, ``sqlite_backend.py`` over ``sqlite.py`` (the
one-thread SQLite file, also used directly by the notebook cell store),
``postgresql.py``, ``factory.py`` (``make_database``), ``urls.py`` (password masking).
"""
