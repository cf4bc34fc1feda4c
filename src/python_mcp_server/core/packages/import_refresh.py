"""Telling running kernels that packages changed, so that new imports find them.

A kernel's import system caches folder listings; after an install (or the background
preinstall) into the environment or session folder a kernel uses, a module that was not
there when the folder was first listed would stay unimportable. Each running kernel is
asked to forget them (``importlib.invalidate_caches``), silently and briefly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from python_mcp_server.errors import ServerError

if TYPE_CHECKING:
    from python_mcp_server.core.sessions.session import KernelSession

#: Seconds a running kernel has to acknowledge an import-cache refresh.
REFRESH_TIMEOUT = 3.0
REFRESH_CODE = "__import__('importlib').invalidate_caches()"


async def refresh_import_caches(sessions: Sequence[KernelSession]) -> list[str]:
    """Tell running kernels to forget cached folder listings so new packages import.

    Runs silently (no history, no output) and waits briefly: a busy kernel runs it after
    its current code. Returns the sessions that confirmed.
    """

    async def one(session: KernelSession) -> str | None:
        try:
            execution = session.client.start_execute(
                REFRESH_CODE, on_iopub=lambda _m: None, on_stdin=None,
                silent=True, store_history=False,
            )  # fmt: skip
        except ServerError:
            return None
        try:
            await execution.wait(REFRESH_TIMEOUT)
        except (asyncio.TimeoutError, ServerError):
            execution.cancel()
            return None
        return session.session_id

    done = await asyncio.gather(*(one(s) for s in sessions))
    return [name for name in done if name is not None]
