"""The program a kernel process runs (shipped as ``python -c`` source, standard library only).

It is not imported by the server: its text is sent to the interpreter of the kernel's
environment, which may not have this package. ``sys.argv[1]`` is a JSON object:

- ``limits``: ``[[rlimit name, value], ...]`` set (soft and hard) before anything else;
- ``preload``: module names imported before the kernel starts; a failure is written to
  stderr as one ``MCP-PRELOAD-FAILED <json>`` line and the kernel starts anyway;
- ``forwarder``: ``{"port", "socket", "loop"}``: bind ``127.0.0.1:port`` (in the sandbox's
  own network namespace), then fork a child that runs ``loop`` (no second interpreter),
  handing every connection to the egress proxy's ``socket`` (see ``infra/network/forwarder.py``);
- ``mode``: ``"kernel"`` (become ipykernel_launcher with the remaining arguments, as a
  child subreaper so that no process it starts can leave its process tree) or
  ``"template"`` (import the preload, then fork one kernel per request read from stdin;
  see ``template_main``);
- ``kernel_args`` (template mode): the ipykernel arguments every request carries after
  ``-f <connection file>``; the template parses them once (``Prepared``).

A forked kernel (``become_kernel``) leads its own session and process group, keeps no file
descriptor of the template (stdin is /dev/null, stdout and stderr its own log), reseeds
every random generator it inherited, takes its own environment and working directory,
and ends when the server ends. It forks before any user code runs: the template runs
only the preload, never a request's code.

What a kernel copies of the template's memory is what it writes to: a page of shared
objects is copied at its first reference count change. The template therefore never
collects (freed holes in shared pages would take the kernels' first objects), imports
what ipykernel imports as it starts, and does the part of ipykernel's start-up that is the
same for every kernel (``Prepared``); it opens no socket, thread or database.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import sys
import threading
from typing import Any

PRELOAD_MARKER = "MCP-PRELOAD-FAILED "
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
_INLINE = "matplotlib_inline.backend_inline"


def apply_limits(limits: list[list[Any]]) -> None:
    import resource

    for name, value in limits:
        number = getattr(resource, name)
        hard = resource.getrlimit(number)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(number, (value, value))


def start_forwarder(spec: dict[str, Any]) -> int:
    """Listen on the sandbox's loopback, then leave the forwarding to a child of its own.

    The child is a plain fork that runs ``loop`` itself: no second interpreter starts (that
    cost a kernel start as much as the rest of the sandbox). It forks here, before the
    kernel has imported anything or read its connection file, so it holds nothing the
    kernel's code could not read anyway. Returns the child's pid."""
    import socket

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(spec["port"])))
    listener.listen(64)
    pid = os.fork()
    if pid == 0:
        try:
            sys.argv = ["forwarder", str(listener.fileno()), spec["socket"]]
            exec(spec["loop"], {"__name__": "__forwarder__"})
        finally:
            os._exit(127)
    listener.close()
    return pid


def preload(modules: list[str]) -> dict[str, str]:
    """Import each module; return {module: error} for the ones that failed."""
    failures: dict[str, str] = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # a module may call sys.exit on import
            failures[name] = f"{type(exc).__name__}: {exc}"[:500]
    if failures:
        sys.stderr.write(PRELOAD_MARKER + json.dumps(failures) + "\n")
        sys.stderr.flush()
    return failures


def become_subreaper() -> None:
    """Adopt every orphan among this kernel's descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    A daemon that double-forks and calls ``setsid`` leaves the kernel's process group and
    loses its parent; as a subreaper the kernel inherits it, so it stays in the kernel's
    process tree and is ended with the kernel. Nothing happens where prctl is unavailable.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


class _Listed:
    """A module as ipykernel's kernel lists it when it starts: its file alone."""

    __slots__ = ("__file__",)

    def __init__(self, file: str) -> None:
        self.__file__ = file


class _Modules:
    """``sys.modules`` whose ``copy()`` answers with the template's list of module files."""

    def __init__(self, listed: dict[str, _Listed]) -> None:
        self._listed = listed

    def copy(self) -> dict[str, _Listed]:
        return self._listed

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.modules, name)

    def __getitem__(self, name: str) -> Any:
        return sys.modules[name]

    def __contains__(self, name: object) -> bool:
        return name in sys.modules

    def __iter__(self) -> Any:
        return iter(sys.modules)

    def __len__(self) -> int:
        return len(sys.modules)


class _SysView:
    """``sys`` as ipykernel's kernel module sees it while a forked kernel starts.

    ``IPythonKernel.__init__`` lists the file of every imported module (for its debugger)
    by reading each module object: in a forked kernel that writes a reference count into
    the page of every module the template imported, and copies those pages (about 2 MB).
    The template lists them once (``Prepared``); everything else is the real ``sys``."""

    def __init__(self, listed: dict[str, _Listed]) -> None:
        self.modules = _Modules(listed)

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)


class Prepared:
    """What a template did of ipykernel's start-up, once for every kernel it forks.

    ``IPKernelApp.initialize`` first parses the command line, finds the profile and reads
    the configuration files (the same for every kernel of the template); the rest (the
    connection file, sockets, threads, the kernel and its shell) is each kernel's own and
    happens in the child."""

    def __init__(self, args: list[str]) -> None:
        from ipykernel.kernelapp import IPKernelApp
        from IPython.core.application import BaseIPythonApplication

        self.args = args
        self.app = IPKernelApp.instance()
        try:
            BaseIPythonApplication.initialize(self.app, args)  # type: ignore[no-untyped-call]
        except BaseException:
            IPKernelApp.clear_instance()
            raise
        self.excepthook = sys.excepthook  # IPython's crash handler, the kernels' alone
        sys.excepthook = sys.__excepthook__
        self.listed: dict[str, _Listed] = {}
        for name, module in sys.modules.copy().items():
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and file:
                # A new string, next to the others: not the module's own (see _SysView).
                self.listed[name] = _Listed((file + " ")[:-1])

    def initialize(self, argv: list[str]) -> Any:
        """In the forked child: the rest of ``IPKernelApp.initialize`` for ``argv``."""
        from IPython.core.application import BaseIPythonApplication

        sys.excepthook = self.excepthook
        app = self.app
        if argv[:1] != ["-f"] or argv[2:] != self.args:  # not what the template parsed
            app.parse_command_line(argv)
        else:
            app.connection_file = argv[1]
        ipkernel = sys.modules.get("ipykernel.ipkernel")
        view = ipkernel is not None and getattr(ipkernel, "sys", None) is sys
        parsed = BaseIPythonApplication.initialize
        BaseIPythonApplication.initialize = lambda self, argv=None: None  # type: ignore[method-assign]
        if view:
            ipkernel.sys = _SysView(self.listed)  # type: ignore[union-attr]
        try:
            app.initialize([])  # type: ignore[no-untyped-call]
        finally:
            BaseIPythonApplication.initialize = parsed  # type: ignore[method-assign]
            if view:
                ipkernel.sys = sys  # type: ignore[union-attr]
        return app


def prepare(args: list[str]) -> Prepared | None:
    """In a template: ``Prepared``, or None if that fails (each kernel then does it all)."""
    try:
        return Prepared(args)
    except (Exception, SystemExit) as exc:
        sys.stderr.write(f"template: kernel start-up not prepared: {type(exc).__name__}: {exc}\n")
        return None


def harden_completion_cache() -> None:
    """Make jedi's on-disk cache safe to share between kernels that can be killed.

    parso (jedi's parser) pickles parsed modules into the user's cache folder, which
    unsandboxed kernels share, writing each file in place: a kernel killed mid-write left
    a truncated file, and parso's load raised on it in every later kernel, so completion
    in those modules silently found nothing. Writes now go through a temporary file and
    ``os.replace``; a file that cannot be unpickled reads as a cache miss (and is
    rewritten). parso has no setting for either, so its two module functions are wrapped.
    """
    import pickle

    try:
        cache: Any = importlib.import_module("parso.cache")
    except ImportError:
        return

    load: Any = cache._load_from_file_system
    if getattr(load, "__wrapped__", None) is not None:
        return

    def load_or_miss(*args: Any, **kwargs: Any) -> Any:
        try:
            return load(*args, **kwargs)
        except (
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            ImportError,
            pickle.UnpicklingError,
        ):
            return None

    def save_whole(hashed_grammar: Any, path: Any, item: Any, cache_path: Any = None) -> None:
        target = cache._get_hashed_path(hashed_grammar, path, cache_path=cache_path)
        partial = f"{target}.{os.getpid()}.tmp"
        try:
            with open(partial, "wb") as handle:
                pickle.dump(item, handle, pickle.HIGHEST_PROTOCOL)
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)

    load_or_miss.__wrapped__ = load  # type: ignore[attr-defined]
    cache._load_from_file_system = load_or_miss
    cache._save_to_file_system = save_whole


def run_kernel(argv: list[str], prepared: Prepared | None = None) -> None:
    """What ``python -m ipykernel_launcher`` does, plus the inline plots of a preload."""
    become_subreaper()
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    app: Any
    if prepared is not None:
        app = prepared.initialize(argv)
    else:
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize(argv)
    harden_completion_cache()
    inline = sys.modules.get(_INLINE)
    if inline is not None:  # imported before the shell existed: hook it up now
        inline._enable_matplotlib_integration()
    app.start()


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
    prepared: Prepared | None,
    log_fd: int | None = None,
    enter: Any = None,
) -> None:
    """In the forked child: cut every tie to the template, then run the kernel.

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
    run_kernel(list(request["argv"]), prepared)


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


def _fork(request: dict[str, Any], server_pid: int, prepared: Prepared | None) -> None:
    gc.freeze()  # a collection in a kernel must not touch (and so copy) the shared objects
    pid = os.fork()
    if pid == 0:
        try:
            become_kernel(request, server_pid, prepared)
        except BaseException as exc:
            os.write(2, f"kernel start failed: {type(exc).__name__}: {exc}\n".encode())
            os._exit(1)
        os._exit(0)
    _send({"forked": request["id"], "pid": pid})


def _fork_isolated(
    request: dict[str, Any], fds: list[int], programs: dict[str, Any], prepared: Prepared | None
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

            become_kernel(request, None, prepared, log_fd=fds[1], enter=enter)
        except BaseException as exc:
            os.write(2, f"kernel start failed: {type(exc).__name__}: {exc}\n".encode())
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


def template_main(config: dict[str, Any]) -> None:
    """Import the preload, say so, then fork a kernel for each request read from stdin.

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
    failures = preload(list(config.get("preload", ())))
    for name in KERNEL_MODULES:  # the kernel's own code, shared too
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:
            sys.stderr.write(f"template: could not import {name}: {exc}\n")
    harden_completion_cache()  # imports parso (2.3 MB a kernel would make its own)
    prepared = prepare(list(config.get("kernel_args", ())))
    if sandboxed:  # its last import done: the children's import caches, made stale once
        programs["environment"]["settle"]()
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
                _fork_isolated(request, fds, programs, prepared)
            else:
                _fork(request, int(server_pid or 0), prepared)
            del request


def main() -> None:
    config = json.loads(sys.argv[1])
    apply_limits(config.get("limits", []))
    if config.get("forwarder"):
        start_forwarder(config["forwarder"])
    if config.get("mode") == "template":
        template_main(config)
        return
    preload(list(config.get("preload", ())))
    run_kernel(sys.argv[2:])  # the arguments of ipykernel_launcher


if __name__ == "__main__":
    main()
