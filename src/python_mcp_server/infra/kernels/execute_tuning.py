"""What every kernel this server launches leaves out of ipykernel's work per execute.

A warm ``1+1`` cost a kernel (ipykernel 7) about 3 ms of CPU, spread over three Python
threads: the main thread runs the cell, the IOPub thread sends what it publishes, the shell
channel thread passes requests in and replies out. Nothing the server sends adds to that
(an execute is the agent's code, unchanged, and nothing else), so the cuts are in what
ipykernel itself does per execute, and leave every message the server receives as it was:

- **Flushes of an empty stream.** ``OutStream.flush`` hands a flush to the IOPub thread and
  waits until it has run: a round trip between two threads (with their wake-ups and the
  interpreter lock changing hands) even when nothing was written. An execute that prints
  nothing still made four: ``sys.stdout`` and ``sys.stderr`` before its result
  (``finish_displayhook``) and again before its reply. A stream that has nothing buffered
  and no flush of its own running now returns at once; one with output flushes as before,
  so output still precedes the result it came before. What an empty flush also did was
  wait for the IOPub messages queued before it: without the wait a reply may reach the
  server before the result it follows, which changes nothing here, since the server ends
  an execution at its idle status, which the same queue sends after everything published
  before it (``core/sessions/kernel_requests.py``).
- **The sleep before every reply.** ipykernel sleeps 0.5 ms (``Kernel._execute_sleep``)
  between the flushes and the reply, "on rare occasions the flush doesn't seem to make it
  to the clients": a mitigation for clients that stop at the reply, not the idle status.
  Set to 0.
- **The signature read per execute.** ``IPythonKernel.do_execute`` reads the signature of
  the shell's ``run_cell_async`` (``inspect.signature``) on every execute to see whether it
  takes ``cell_id``; the answer is now kept per function.
- **Debug records nobody writes.** The kernel's logger stays at DEBUG while its one handler
  writes ERROR and above (``--Application.log_level=ERROR``): each message handled built
  several log records only for the handler to drop them. The logger now has its handlers'
  level, so those calls return at once; what is written is the same.

Measured in one run, kernels side by side and alternated (``python -c kernel_program``
with the data stack preloaded, no sandbox, 300 calls each, load 7.9): 3.15 → 2.52 ms of
kernel CPU per ``1+1`` (-20 %), p50 4.46 → 3.23 ms round trip; the main and IOPub threads
go from about 19 to 5 time slices per call each.

The line runs at kernel start, as an ipykernel ``exec_lines`` argument (``KERNEL_ARGS``,
so local, sandboxed and forked kernels alike), in a throw-away namespace, before any user
code; it is idempotent and does nothing where ipykernel lacks what it relies on (another
version in a session's environment). Gateway kernels start from the gateway's kernelspec
and keep ipykernel's defaults.
"""

from __future__ import annotations

#: The line's source; run with ``exec(SOURCE, {})`` so that it leaves no names behind.
SOURCE = """\
def tune():
    import sys
    from IPython.core.getipython import get_ipython
    from ipykernel.iostream import OutStream
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is not None and kernel.has_trait("_execute_sleep"):
        kernel._execute_sleep = 0.0
    log = getattr(kernel, "log", None)
    levels = [handler.level for handler in getattr(log, "handlers", ())]
    if levels and min(levels) > log.level:
        log.setLevel(min(levels))
    from ipykernel import ipkernel
    accepts = getattr(ipkernel, "_accepts_parameters", None)
    if accepts is not None and not hasattr(accepts, "__wrapped__"):
        known = {}

        def accepts_known(method, names):
            key = (getattr(method, "__func__", method), tuple(names))
            if key not in known:
                known[key] = accepts(method, names)
            return dict(known[key])

        accepts_known.__wrapped__ = accepts
        ipkernel._accepts_parameters = accepts_known
    stream = sys.stdout
    if hasattr(OutStream.flush, "__wrapped__") or not isinstance(stream, OutStream):
        return
    if not all(hasattr(stream, name) for name in ("_buffers", "_buffer_lock", "echo")):
        return
    if not isinstance(stream._buffers, dict) or not hasattr(OutStream, "_flush"):
        return
    flush, send = OutStream.flush, OutStream._flush

    def _flush(self):
        running = self.__dict__.setdefault("_pmcp_flushing", [])
        running.append(None)
        try:
            return send(self)
        finally:
            running.pop()

    def quiet_flush(self):
        if self.echo is None:
            with self._buffer_lock:
                buffered = any(buffer.tell() for buffer in self._buffers.values())
            # Buffers read before the running mark: a flush that took them sets the mark first.
            if not buffered and not self.__dict__.get("_pmcp_flushing"):
                return None
        return flush(self)

    _flush.__wrapped__ = send
    quiet_flush.__wrapped__ = flush
    OutStream._flush = _flush
    OutStream.flush = quiet_flush

try:
    tune()
except Exception:
    pass
"""

#: The code that runs the line in a throw-away namespace.
CODE = f"exec({SOURCE!r}, {{}})"

#: ipykernel arguments every kernel this server launches gets: the line, run at start-up.
KERNEL_ARGS: tuple[str, ...] = (f"--IPKernelApp.exec_lines={CODE}",)
