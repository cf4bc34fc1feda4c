"""Output of a background thread never lands in a later call's stdout: it is dropped and
the later result says so."""

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


async def test_a_thread_printing_after_its_cell_ended_stays_out_of_the_next_call(
    client: Client[Any],
) -> None:
    first = await run(client, START)
    assert first["stdout"] == "started\n"
    second = await run(client, "go.set()\nworker.join()\nsys.stdout.flush()\nprint('mine')")
    assert second["status"] == "ok"
    assert second["stdout"] == "mine\n"
    third = await run(client, "print('third')")
    assert third["stdout"] == "third\n"
    notes = " ".join(m for m in (second["message"], third["message"]) if m)
    assert "background threads of earlier calls were dropped" in notes


async def test_a_thread_printing_within_its_own_cell_is_still_that_cells_output(
    client: Client[Any],
) -> None:
    cell = (
        "import threading\n"
        "t = threading.Thread(target=lambda: print('from the thread'))\n"
        "t.start()\nt.join()\nprint('done')"
    )
    data = await run(client, cell)
    assert data["stdout"] == "from the thread\ndone\n"
    assert (await run(client, "t.is_alive()"))["result"] == "False"
    names = await run(client, "'start' in dir() or '_start' in dir() or 'contextvars' in dir()")
    assert names["result"] == "False"  # the kernel's start-up line left no names behind
