"""Output of a background thread never lands in a later call's stdout: it is dropped and
the later result says so."""

from __future__ import annotations

from typing import Any

from fastmcp import Client

from tests.background_threads import assert_background_output_stays_out, assert_no_start_up_names
from tests.helpers import run


async def test_a_thread_printing_after_its_cell_ended_stays_out_of_the_next_call(
    client: Client[Any],
) -> None:
    await assert_background_output_stays_out(client)


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
    await assert_no_start_up_names(client)
