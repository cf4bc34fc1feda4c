"""The disconnect mark tells its listeners at once, once; an undone listener hears nothing.

The whole path (a dropped HTTP connection stops its call) is tests/e2e/test_dropped_clients.py.
"""

from __future__ import annotations

from python_mcp_server.server.disconnects import CallerGone


def test_listeners_are_told_once_and_undo_works() -> None:
    gone = CallerGone()
    heard: list[str] = []
    gone.listen(lambda: heard.append("first"))
    undo = gone.listen(lambda: heard.append("undone"))
    undo()
    assert not gone.is_set()
    gone.set()
    gone.set()
    assert gone.is_set()
    assert heard == ["first"]


def test_a_listener_after_the_caller_left_is_told_at_once() -> None:
    gone = CallerGone()
    gone.set()
    heard: list[str] = []
    undo = gone.listen(lambda: heard.append("late"))
    assert heard == ["late"]
    undo()  # nothing to undo, and no error
