"""The background-thread scenario shared by the local and the gateway tests: a thread a
cell started prints after that cell ended, and its output must stay out of later calls."""

from __future__ import annotations

from typing import Any

from fastmcp import Client

from tests.helpers import run

START = (
    "import sys, threading\n"
    "go = threading.Event()\n"
    "def later():\n"
    "    go.wait()\n"
    "    for i in range(50):\n"
    "        print('background', i)\n"
    "    sys.stdout.flush()\n"
    "worker = threading.Thread(target=later, daemon=True)\n"
    "worker.start()\n"
    "print('started')\n"
)


async def assert_background_output_stays_out(client: Client[Any], **arguments: Any) -> None:
    """A thread started by one call prints during the next: neither the next call nor the
    one after gets its output, and one of them says it was dropped."""
    first = await run(client, START, **arguments)
    assert first["stdout"] == "started\n"
    second = await run(
        client, "go.set()\nworker.join()\nsys.stdout.flush()\nprint('mine')", **arguments
    )
    assert second["status"] == "ok"
    assert second["stdout"] == "mine\n"
    third = await run(client, "print('third')", **arguments)
    assert third["stdout"] == "third\n"
    notes = " ".join(m for m in (second["message"], third["message"]) if m)
    assert "background threads of earlier calls were dropped" in notes


async def assert_no_start_up_names(client: Client[Any], **arguments: Any) -> None:
    """The thread-context line left no names in the user's namespace."""
    names = await run(
        client, "'start' in dir() or '_start' in dir() or 'contextvars' in dir()", **arguments
    )
    assert names["result"] == "False"
