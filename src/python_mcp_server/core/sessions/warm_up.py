"""A pooled kernel's warm-up: the first-execute work done before a session takes it.

A fresh kernel's first execute costs more than the next ones: IPython builds its display
formatters' trait defaults and the input transformers' caches on first use, and a forked
kernel copies the template's pages its execute path first writes to. Measured on a
forked kernel, that was most of the gap between a new session's first ``1+1`` and its
second. The pool runs one execute in each kernel it starts, off every session's path.

It leaves no trace a session could see: a silent execute (no execution count, no
history, no output published), of ``pass``; the expression that warms the formatters is a
user expression, evaluated and formatted without binding a name. Its reply goes to no
call, and the kernel's ``executed`` event is cleared after it, so the pool still waits
for the session's own first call before starting a successor.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from python_mcp_server.errors import ServerError

if TYPE_CHECKING:
    from python_mcp_server.core.sessions.kernel_client import KernelClient
    from python_mcp_server.infra.kernels.base import Message

logger = logging.getLogger(__name__)

#: The warm-up: a cell that does nothing, and one expression formatted as a result is.
CODE = "pass"
EXPRESSIONS = {"warm_up": "1+1"}


def _ignore(_message: Message) -> None:
    return None


async def warm_up(client: KernelClient, timeout: float) -> None:
    """Run the warm-up in ``client``'s kernel (up to ``timeout`` s). Never raises for the
    kernel's sake: a kernel that was not warmed still works, its first call is slower."""
    try:
        execution = client.start_execute(
            CODE,
            on_iopub=_ignore,
            on_stdin=None,
            silent=True,
            store_history=False,
            user_expressions=EXPRESSIONS,
            tracked=False,
        )
        try:
            await execution.wait(timeout)
        except asyncio.TimeoutError:
            execution.cancel()
            logger.debug("pooled kernel did not finish its warm-up within %g s", timeout)
        except BaseException:  # the pool is closing: stop waiting for the kernel's answer
            execution.cancel()
            raise
    except ServerError as exc:  # the kernel ended meanwhile: the pool drops it
        logger.debug("pooled kernel ended during its warm-up: %s", exc)
    finally:
        client.executed.clear()
