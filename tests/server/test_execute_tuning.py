"""The kernels' per-execute tuning (``infra/kernels/execute_tuning.py``) leaves every result
as it was: output still comes before the result it preceded, none is lost at the end of a
call, and the tuning leaves no names in the user's namespace. Real kernels, real protocol."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client

from tests.helpers import run

pytestmark = pytest.mark.timeout(180)


async def test_the_tuning_is_in_every_kernel_and_leaves_no_names(client: Client[Any]) -> None:
    tuned = await run(
        client,
        "import sys\n"
        "kernel = get_ipython().kernel\n"
        "from ipykernel import ipkernel\n"
        "(hasattr(type(sys.stdout).flush, '__wrapped__'), kernel._execute_sleep,\n"
        " kernel.log.level == min(h.level for h in kernel.log.handlers),\n"
        " hasattr(ipkernel._accepts_parameters, '__wrapped__'))",
    )
    assert tuned["result"] == "(True, 0.0, True, True)"
    names = await run(client, "sorted(n for n in dir() if n in ('tune', 'flush', 'send'))")
    assert names["result"] == "[]"


async def test_outputs_and_results_of_calls_that_print_or_not(client: Client[Any]) -> None:
    """Empty and non-empty streams in every combination, call after call."""
    cells = [
        ("41 + 1", "", "", "42"),
        ("print('out'); 1", "out\n", "", "1"),
        ("import sys; sys.stderr.write('err'); 2", "", "err", "2"),
        ("x = 3", "", "", None),
        ("print('a', flush=True); sys.stderr.write('b'); sys.stderr.flush(); print('c'); x",
         "a\nc\n", "b", "3"),
        ("sys.stdout.flush(); sys.stderr.flush(); 'quiet'", "", "", "'quiet'"),
    ]  # fmt: skip
    for _ in range(3):
        for code, stdout, stderr, result in cells:
            data = await run(client, code)
            assert data["status"] == "ok", data
            assert (data["stdout"], data["stderr"], data["result"]) == (stdout, stderr, result)


async def test_output_whose_flush_is_under_way_as_the_cell_ends_is_that_cells(
    client: Client[Any],
) -> None:
    """A cell prints and ends while the IOPub thread is inside the timed flush that took
    its output (ipykernel's ``flush_interval``), held there until the main thread next
    hands the IOPub thread something. The end-of-cell flush finds the buffer empty, but
    must still wait for that flush; had it returned at once, the next thing handed over
    would be the idle status, queued before the output, and the call would end without it.
    """
    hold = (
        "import sys, threading\n"
        "session, pub = sys.stdout.session, sys.stdout.pub_thread\n"
        "inside, release = threading.Event(), threading.Event()\n"
        "def send(stream, message, *args, **kwargs):\n"
        "    kind = message.get('msg_type') if isinstance(message, dict) else None\n"
        "    if kind == 'stream' and not inside.is_set():\n"
        "        inside.set()\n"
        "        release.wait(10)\n"
        "    return type(session).send(session, stream, message, *args, **kwargs)\n"
        "def schedule(f):\n"
        "    del pub.schedule\n"
        "    release.set()\n"
        "    return pub.schedule(f)\n"
        "session.send = send\n"
    )  # fmt: skip
    for index in range(3):
        await run(client, hold)
        cell = f"print('late {index}')\ninside.wait(10)\npub.schedule = schedule\ndel session.send"
        data = await run(client, cell)
        assert (data["status"], data["stdout"]) == ("ok", f"late {index}\n"), data
