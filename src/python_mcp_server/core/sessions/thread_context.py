"""The kernel start-up line that makes a thread keep the context of the cell that started it.

ipykernel (7 and later) tags a thread's output with the request in the thread's context and
otherwise with the request running now; with this line a thread started by one cell stays
tagged with that cell, so its output never lands in a later call's result (see
``core/execution/background_output.py``). It runs in a throw-away namespace: the user's
variables never see it.
"""

from __future__ import annotations

_THREAD_CONTEXT = """\
import contextvars, threading
_start = threading.Thread.start
def start(self, *args, **kwargs):
    context = contextvars.copy_context()
    run = self.run
    self.run = lambda: context.run(run)
    return _start(self, *args, **kwargs)
start.__wrapped__ = _start
threading.Thread.start = start
"""

#: ipykernel arguments every kernel gets: the thread-context line above, run at start-up.
KERNEL_ARGS: tuple[str, ...] = (f"--IPKernelApp.exec_lines=exec({_THREAD_CONTEXT!r}, {{}})",)
