"""A template: the kernel program in ``template`` mode, forking one kernel per request.

Shipped as text (standard library only) in the template's configuration (``"template"``)
and executed by ``kernel_program.py`` (run as ``python -c``), which then calls
``template_main(config, kernel, reserve)`` with its own namespace: this program imports the
preload, runs ``preload``, ``harden_completion_cache`` and ``prepare`` there once, and each
forked child ends in its ``run_kernel``. Its imports are modules the kernel program has
already imported, so a sandboxed template imports nothing before its ``sys.path`` is
checked (``environment_program.start``).

A forked kernel (``become_kernel``) leads its own session and process group, keeps no file
descriptor of the template (stdin is /dev/null, stdout and stderr its own log), reseeds
every random generator it inherited, takes its own environment and working directory,
and ends when the server ends. It forks before any user code runs: the template runs
only the preload, never a request's code.

What a kernel copies of the template's memory is what it writes to: a page of shared
objects is copied at its first reference count change. The template therefore never
collects (freed holes in shared pages would take the kernels' first objects), imports
what ipykernel imports as it starts (``KERNEL_MODULES``), and does the part of ipykernel's
start-up that is the same for every kernel (``kernel_program.Prepared``); it opens no
socket, thread or database.

What a fork itself costs is the page tables: one entry copied per 4 KiB page the template
wrote (about 90 MB with the data stack), and as many dropped when a process that copied
them ends or replaces its image, three forks and two image changes per sandboxed kernel.
Before its first fork the template makes its fully written memory huge pages
(``use_huge_pages``), where the host allows: one entry per 2 MiB. A kernel that then
writes to such a page still copies only the 4 KiB it wrote (Linux splits the shared huge
page's entry in the writer first); nothing more is shared than before.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # never at run time: the template has no such package
    from python_mcp_server.infra.kernels.kernel_program import Prepared

#: What ipykernel imports while it initialises: a template imports them once for all.
KERNEL_MODULES = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "tornado.platform.asyncio",
    "tornado.queues",
    "tornado.locks",
    "faulthandler",
    "pdb",
    "pydoc",
    "http.server",
    "xmlrpc.server",
    "IPython.extensions",
    "IPython.core.debugger",
    "IPython.core.completerlib",
    "IPython.core.logger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "IPython.utils.wildcard",
    "importlib.readers",
    "resource",
)


#: Linux's ``MADV_COLLAPSE`` (6.1 and later): make a range huge pages now, whatever the
#: transparent huge page settings say, without marking it for later ones.
MADV_COLLAPSE = 25
#: Of the 4 KiB pages of a huge page, how many may be unwritten for it to be made one
#: (one in eight): making it fills them, memory the template would not otherwise use.
UNWRITTEN_ALLOWED = 8


def _huge_page_size() -> int:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as size:
            return int(size.read())
    except (OSError, ValueError):
        return 2 << 20


def use_huge_pages() -> int:
    """Make the written parts of this process's private memory huge pages (see the module
    docstring); return how many bytes now are. Where the host has no such call, refuses
    it or has no huge page to give, nothing changes and the forks cost what they did.

    Only ranges already written almost whole are made huge pages (``UNWRITTEN_ALLOWED``),
    and the ranges are left unmarked (no ``MADV_HUGEPAGE``), so that no later allocation,
    the template's or a kernel's, is given a huge page by this."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise, mincore = libc.madvise, libc.mincore
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    page, huge = os.sysconf("SC_PAGE_SIZE"), _huge_page_size()
    per_huge = huge // page
    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    wanted: list[tuple[int, int]] = []
    for line in lines:
        fields = line.split()
        if fields[1] != "rw-p" or fields[5:] not in ([], ["[heap]"]):
            continue  # private writable memory only: the heap and anonymous mappings
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        first, last = -(-start // huge) * huge, end // huge * huge
        if last <= first:
            continue
        resident = ctypes.create_string_buffer((last - first) // page)
        if mincore(first, last - first, resident) != 0:
            continue
        for index in range((last - first) // huge):
            written = resident.raw[index * per_huge : (index + 1) * per_huge]
            if written.count(0) * UNWRITTEN_ALLOWED > per_huge:
                continue
            base = first + index * huge
            if wanted and wanted[-1][1] == base:
                wanted[-1] = (wanted[-1][0], base + huge)
            else:
                wanted.append((base, base + huge))
    made = 0
    for start, end in wanted:
        if madvise(start, end - start, MADV_COLLAPSE) == 0:
            made += end - start
    return made


def reseed() -> None:
    """Fresh random state after a fork (``random`` reseeds itself through os.register_at_fork)."""
    import random

    random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()  # the legacy global RandomState; default_rng() seeds from the OS


def exit_with_server(server_pid: int) -> None:
    """End this process when the server ends (forked kernels are not the server's children)."""
    try:
        pidfd = os.pidfd_open(server_pid)
    except OSError:
        os._exit(1)

    def watch() -> None:
        select.select([pidfd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="mcp-server-watch", daemon=True).start()


def become_kernel(
    request: dict[str, Any],
    server_pid: int | None,
    kernel: dict[str, Any],
    prepared: Prepared | None,
    log_fd: int | None = None,
    enter: Any = None,
) -> None:
    """In the forked child: cut every tie to the template, then run the kernel
    (``run_kernel`` of ``kernel``, the kernel program's namespace).

    A sandboxed child (``log_fd`` given: its log cannot be opened by path in its sandbox)
    stays in the process group of its waiter and dies with it rather than watching the
    server (its egress port, if any, is served by the server: ``isolation_program.py``).
    ``enter`` (a sandboxed child) makes it its environment's interpreter once its
    variables are its own (``environment_program.enter``)."""
    gc.enable()
    if log_fd is None:
        os.setsid()
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if log_fd is None:
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if enter is not None:
        enter()
    else:  # the template started without this kernel's own PYTHONPATH (its packages)
        for entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
            if entry and entry not in sys.path:
                sys.path.insert(0, entry)
    reseed()
    if server_pid is not None:
        exit_with_server(server_pid)
    kernel["run_kernel"](list(request["argv"]), prepared)


def _send(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"exit": pid, "status": os.waitstatus_to_exitcode(status)})


def _fork(
    request: dict[str, Any],
    server_pid: int,
    kernel: dict[str, Any],
    prepared: Prepared | None,
    reserve: Any,
) -> None:
    gc.freeze()  # a collection in a kernel must not touch (and so copy) the shared objects
    pid = os.fork()
    if pid == 0:
        try:
            become_kernel(request, server_pid, kernel, prepared)
        except BaseException as exc:
            kernel["report_start_failure"](exc, reserve)
            os._exit(1)
        os._exit(0)
    _send({"forked": request["id"], "pid": pid})


def _fork_isolated(
    request: dict[str, Any],
    fds: list[int],
    programs: dict[str, Any],
    prepared: Prepared | None,
    reserve: Any,
) -> None:
    """Fork a sandboxed kernel: it isolates itself (``isolation_program.py``), then
    becomes its environment's interpreter (``environment_program.py``)."""
    gc.freeze()  # a collection in a kernel must not touch (and so copy) the shared objects
    pid = os.fork()
    if pid == 0:
        try:
            programs["isolation"]["isolate"](request["isolation"], fds)

            def enter() -> None:
                programs["environment"]["enter"](request["environment"], programs["base"])

            become_kernel(request, None, programs["kernel"], prepared, log_fd=fds[1], enter=enter)
        except BaseException as exc:
            programs["kernel"]["report_start_failure"](exc, reserve)
            os._exit(1)
        os._exit(0)
    for fd in fds:
        os.close(fd)
    _send({"forked": request["id"], "pid": pid})


def keep(template: int, become: Any = None, program: str | None = None) -> None:
    """Pid 1 of a sandboxed template's namespace: outlive the template while its kernels
    run (they would die with this namespace), reporting the exits it reaps; end with the
    last of them. ``become`` (``isolation_program.become_reaper``) replaces this process
    with ``program`` (``reaper.py``), which does the same in a few pages, where it can."""
    os.close(0)
    if become is not None:
        become(program, [str(template), "report"])
    while True:
        try:
            pid, status = os.wait()
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(0)
        code = os.waitstatus_to_exitcode(status)
        _send({"ended": code} if pid == template else {"exit": pid, "status": code})


def _read_requests(sandboxed: bool, pending: bytearray) -> list[Any] | None:
    """The (request, descriptors) pairs one read of stdin brings; None at end of input.

    Stdin carries JSON lines (``pending`` keeps a partial one), or for a sandboxed
    template one datagram per request with its descriptors."""
    if sandboxed:
        import socket

        with socket.socket(fileno=os.dup(0)) as channel:
            data, fds, _, _ = socket.recv_fds(channel, 1 << 20, 64)
        return [(json.loads(data), fds)] if data else None
    chunk = os.read(0, 65536)
    if not chunk:
        return None
    pending += chunk
    found: list[Any] = []
    while b"\n" in pending:
        line, _, rest = bytes(pending).partition(b"\n")
        pending[:] = rest
        found.append((json.loads(line), []))
    return found


def template_main(config: dict[str, Any], kernel: dict[str, Any], reserve: Any = None) -> None:
    """Import the preload, say so, then fork a kernel for each request read from stdin.

    ``kernel`` is the namespace of the kernel program that runs this one; ``reserve`` its
    memory reserve (``apply_limits``), which each kernel inherits.

    Requests: ``{"id", "argv", "cwd", "env", "log"}``. Answers on stdout, one JSON line
    each: ``{"ready": {failures}}`` once, ``{"forked": id, "pid": n}`` per request and
    ``{"exit": pid, "status": code}`` when a kernel ends. The template ends when its stdin
    closes (the server stopped or died) or when its parent changes.

    A sandboxed template (``config["sandboxed"]``, ``sandbox_fork.py``) runs inside its
    own bubblewrap sandbox as pid 1: it forks the template proper and stays as ``keep``.
    Its stdin is a sequenced-packet socket carrying each request with its descriptors,
    and its children isolate themselves with ``config["isolation"]`` (source text) before
    becoming kernels of their environment (``config["environment"]``, source text; the
    template itself is the server's interpreter, its ``sys.path`` checked against
    ``config["trusted_path"]`` first); its ready line lists the top-level modules it
    imported (``"modules"``); ``{"ended": code}`` says the template proper ended.
    """
    # No collection in the template: it would leave freed holes in the pages the kernels
    # share, which their first objects would fill (and copy). Kernels collect again.
    gc.disable()
    server_pid = config.get("server_pid")
    sandboxed = bool(config.get("sandboxed"))
    programs: dict[str, Any] = {
        "kernel": kernel,
        "isolation": {"__name__": "__isolation__"},
        "environment": {"__name__": "__environment__"},
    }
    if sandboxed:  # the server's interpreter: its path checked before any import
        exec(config["environment"], programs["environment"])
        programs["base"] = programs["environment"]["start"](config["trusted_path"])
        exec(config["isolation"], programs["isolation"])
        template = os.fork()
        if template:
            keep(template, programs["isolation"]["become_reaper"], config.get("reaper"))
    failures = kernel["preload"](list(config.get("preload", ())))
    for name in KERNEL_MODULES:  # the kernel's own code, shared too
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:
            sys.stderr.write(f"template: could not import {name}: {exc}\n")
    kernel["harden_completion_cache"]()  # imports parso (2.3 MB a kernel would make its own)
    prepared = kernel["prepare"](list(config.get("kernel_args", ())))
    if sandboxed:  # its last import done: the children's import caches, made stale once
        programs["environment"]["settle"]()
    use_huge_pages()  # last: what it wrote until now is what its kernels share
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _send({"ready": failures, "modules": programs["environment"]["loaded"]() if sandboxed else []})
    pending = bytearray()
    while sandboxed or os.getppid() == server_pid:
        readable, _, _ = select.select([0, wake_r], [], [])
        if wake_r in readable:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
            _reap()
        if 0 not in readable:
            continue
        requests = _read_requests(sandboxed, pending)
        if requests is None:
            return
        for request, fds in requests:
            if sandboxed:
                _fork_isolated(request, fds, programs, prepared, reserve)
            else:
                _fork(request, int(server_pid or 0), kernel, prepared, reserve)
            del request
