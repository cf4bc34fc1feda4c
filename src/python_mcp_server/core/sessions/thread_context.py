"""The line that makes a thread keep the context of the cell that started it, and how
every kernel gets it.

ipykernel (7 and later) tags a thread's output with the request in the thread's context and
otherwise with the request running now; with this line a thread started by one cell stays
tagged with that cell, so its output never lands in a later call's result (see
``core/execution/background_output.py``). It runs in a throw-away namespace: the user's
variables never see it. It is idempotent: a kernel whose ``Thread.start`` already carries
``__wrapped__`` is left as it is, so running it twice in one kernel changes nothing.

Where it runs:

* Kernels this server launches itself (local, sandboxed, templates): at start-up, as an
  ipykernel ``exec_lines`` argument (``KERNEL_ARGS``), before the kernel answers.
* Gateway kernels: the gateway's kernelspec starts the process, so no argument of ours
  reaches it. The kernel factory runs the line as a silent execute (``silent``, no
  history, no output) on the shell channel (``send``, then ``report``; ``install`` both):

  - after this server *starts* a kernel (``KernelFactory.start``: a new session, whose
    registry claim makes this server its only starter, or a kernel the gateway gave up
    on, started anew by the replica whose reclaim won), awaited before the session gets
    the kernel; nobody else can reach that kernel yet, so nothing is waited behind;
  - after this server *attaches* (``KernelFactory.attach``: a session another replica
    started, or the kernel's id after any in-place restart: ``restart_kernel``, a hung
    or dead kernel replaced, the gateway's own restart), sent but never awaited.
    Attaching needs it too: a gateway restarts a dead kernel by itself (its restarter),
    also while no server is connected, and no server starts that process. Waiting is
    what attaching must not do: another replica's cell may hold the shell for hours.
    It need not wait: the shell runs one connection's requests in the order sent, so
    the line runs before any cell this server sends afterwards. In a kernel that
    already has the line (the usual case) it does nothing. Its busy/idle status is not
    taken for a running cell (``tracked=False``).

A kernel whose ipykernel keeps one global "current request" (before 6.29) still routes a
thread's output to the call running when it prints: the line changes nothing there, does
no harm, and ``report`` logs a warning saying so (it checks that the kernel's stdout keeps
its request in a ``ContextVar``). ipykernel 6.29 up to 7.0 also tag a thread with the cell
running when it started, by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from python_mcp_server.errors import ServerError

if TYPE_CHECKING:
    from python_mcp_server.core.sessions.kernel_client import KernelClient
    from python_mcp_server.core.sessions.kernel_requests import Execution
    from python_mcp_server.infra.kernels.base import Message

logger = logging.getLogger(__name__)

#: The line's source; run with ``exec(SOURCE, {})`` so that it leaves no names behind.
SOURCE = """\
import contextvars, threading
if not hasattr(threading.Thread.start, "__wrapped__"):
    _start = threading.Thread.start
    def start(self, *args, **kwargs):
        context = contextvars.copy_context()
        run = self.run
        self.run = lambda: context.run(run)
        return _start(self, *args, **kwargs)
    start.__wrapped__ = _start
    threading.Thread.start = start
"""

#: The code that runs the line in a throw-away namespace.
CODE = f"exec({SOURCE!r}, {{}})"

#: ipykernel arguments every kernel this server launches gets: the line, run at start-up.
KERNEL_ARGS: tuple[str, ...] = (f"--IPKernelApp.exec_lines={CODE}",)

#: True in a kernel whose output streams keep their request per context (ipykernel 6.29
#: and later), where the line keeps a thread's output with the cell that started it.
TAGS_BY_CONTEXT = (
    "isinstance(getattr(__import__('sys').stdout, '_parent_header', None), "
    "__import__('contextvars').ContextVar)"
)


def _ignore(_message: Message) -> None:
    return None


def _name(client: KernelClient) -> str:
    return client.kernel.kernel_id or "(local)"


def send(client: KernelClient) -> Execution | None:
    """Send the line as a silent execute (no history, no output); None when the kernel has
    died already (its replacement gets the line in turn)."""
    try:
        return client.start_execute(
            CODE,
            on_iopub=_ignore,
            on_stdin=None,
            silent=True,
            store_history=False,
            user_expressions={"tags": TAGS_BY_CONTEXT},
            tracked=False,
        )
    except ServerError as exc:
        logger.debug("thread-context line not sent to kernel %s: %s", _name(client), exc)
        return None


async def report(client: KernelClient, execution: Execution, timeout: float | None) -> None:
    """Wait for the line's reply (up to ``timeout`` s; None: as long as the kernel lives)
    and log what went wrong. Never raises for the kernel's sake: a kernel without the line
    still works, only its threads' output may land in a later call. On a timeout the
    request stays queued in the kernel; its late reply is dropped."""
    name = _name(client)
    try:
        reply = await execution.wait(timeout)
    except asyncio.TimeoutError:
        execution.cancel()
        logger.warning("kernel %s did not run the thread-context line within %g s", name, timeout)
        return
    except ServerError as exc:  # the kernel ended or the client closed meanwhile
        logger.debug("kernel %s ended before the thread-context line ran: %s", name, exc)
        return
    content = reply.get("content", {})
    if content.get("status") != "ok":
        logger.warning(
            "kernel %s could not run the thread-context line (%s: %s): output of background "
            "threads may land in later calls",
            name,
            content.get("ename", content.get("status")),
            content.get("evalue", ""),
        )
        return
    tags = content.get("user_expressions", {}).get("tags", {})
    if tags.get("data", {}).get("text/plain") == "False":
        logger.warning(
            "kernel %s runs an ipykernel older than 6.29, whose output streams keep one "
            "current request: output of background threads lands in the call running when "
            "it is printed",
            name,
        )


async def install(client: KernelClient, timeout: float) -> None:
    """Run the line in a kernel that did not run it at start-up, and wait (up to
    ``timeout`` s) until it has run."""
    execution = send(client)
    if execution is not None:
        await report(client, execution, timeout)
