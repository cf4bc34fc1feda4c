"""Output of background threads stays out of later calls on gateway kernels too, whose
kernelspec (not this server) starts the kernel: the server runs the thread-context line
itself, on every kernel it starts and every kernel it attaches to."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from fastmcp import Client

from tests.background_threads import assert_background_output_stays_out, assert_no_start_up_names
from tests.gateway.conftest import Replicas
from tests.helpers import call, run


async def test_a_thread_printing_after_its_cell_ended_stays_out_of_the_next_call(
    gateway_client: Client[Any],
) -> None:
    await assert_background_output_stays_out(gateway_client)
    await assert_no_start_up_names(gateway_client)


async def test_a_restarted_kernel_keeps_background_output_out_too(
    gateway_client: Client[Any],
) -> None:
    await run(gateway_client, "1")
    restarted = await call(gateway_client, "restart_kernel")
    assert restarted["action"] == "restarted"
    await assert_background_output_stays_out(gateway_client)
    await assert_no_start_up_names(gateway_client)


async def test_a_kernel_the_gateway_restarted_while_no_server_was_attached(
    replicas: Replicas,
) -> None:
    a = await replicas.open()
    await run(a, "1")
    await replicas.close(a)  # detaches: the kernel lives on, nobody is connected
    (pid,) = replicas.gateway.kernel_processes()
    os.kill(pid, signal.SIGKILL)
    for _ in range(300):  # the gateway polls its kernels every few seconds
        if replicas.gateway.kernel_processes() - {pid}:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the gateway never restarted the killed kernel")
    # No server started this process: the one that attaches to it runs the line.
    b = await replicas.open()
    await assert_background_output_stays_out(b)
    await assert_no_start_up_names(b)
