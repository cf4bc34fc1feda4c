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
  ``"template"`` (run ``template``, the text of ``template_program.py``, which imports the
  preload, then forks one kernel per request read from stdin: see ``main``);
- ``kernel_args`` (template mode): the ipykernel arguments every request carries after
  ``-f <connection file>``; the template parses them once (``Prepared``).

Besides what every kernel does at start, this program holds what a kernel forked from a
template does of ipykernel's start-up: the template does the part that is the same for
every kernel once (``Prepared``, ``prepare``), the forked kernel the rest
(``Prepared.initialize``), reading the module files the template listed (``_SysView``)
rather than touching, and so copying, every module's page.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from typing import Any

PRELOAD_MARKER = "MCP-PRELOAD-FAILED "
#: How a kernel that failed under an address-space limit ends its log: the
#: launcher reads the figures (``limits.start_memory``) to tell a limit too small from any
#: other failure, whatever allocation happened to fail (a loader, ``listdir``, or a C
#: extension that returned NULL without an exception).
START_MEMORY_LINE = (
    "the kernel ended with its address space at a peak of {} MiB of its {} MiB limit"
)
_INLINE = "matplotlib_inline.backend_inline"


#: Address space a kernel under a memory limit keeps back (mapped, never touched: no
#: memory) and gives up to report its failure, which otherwise could not allocate either.
RESERVE_BYTES = 1 << 20


def apply_limits(limits: list[list[Any]]) -> Any:
    """Set each limit; return the reserve of an address-space limit (an ``mmap``), if any.

    Forked kernels inherit the reserve with the limit; ``report_start_failure`` frees it."""
    import resource

    reserve = None
    if any(name == "RLIMIT_AS" for name, _ in limits):
        import mmap

        reserve = mmap.mmap(-1, RESERVE_BYTES)
    for name, value in limits:
        number = getattr(resource, name)
        hard = resource.getrlimit(number)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(number, (value, value))
    return reserve


def start_memory_line() -> str:
    """``START_MEMORY_LINE`` for this process, or "" when its address space is unlimited.

    Written after the kernel failed, when its memory may still be short: a few small
    reads, and "" for any failure (under an exhausted limit even a C function may fail
    without an exception: SystemError)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return ""
        fd = os.open("/proc/self/status", os.O_RDONLY)
        try:
            status = os.read(fd, 8192)
        finally:
            os.close(fd)
        start = status.index(b"VmPeak:") + len(b"VmPeak:")
        peak = int(status[start : status.index(b"kB", start)]) * 1024
        return START_MEMORY_LINE.format(peak >> 20, limit >> 20)
    except BaseException:
        return ""


def report_start_failure(exc: BaseException, reserve: Any = None) -> None:
    """Write why a kernel failed to stderr (its log), the memory line last.

    ``reserve`` (``apply_limits``) is freed first, then the memory figures are taken,
    before the traceback's own allocations."""
    if reserve is not None:
        with contextlib.suppress(BaseException):
            reserve.close()
    line = start_memory_line()
    try:
        import traceback

        traceback.print_exception(exc)
    except BaseException:
        with contextlib.suppress(BaseException):
            os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
    if line:
        with contextlib.suppress(OSError):
            os.write(2, f"{line}\n".encode())


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


def warm_tracebacks() -> None:
    """Format one traceback as a kernel's shell formats an error (IPython's
    ``AutoFormattedTB`` with the shell's defaults), in a template, for every kernel it forks.

    A kernel's first error otherwise does it in each kernel: it imports stack_data and
    what that imports, indexes the file of every module imported so far (``inspect``'s
    module-file caches: with the data stack, about a thousand ``realpath`` calls) and sets
    up the colour style: about 80 ms of CPU, against 8 ms for the next error (measured in
    forked children of a process with the data stack). Those caches and modules then come
    with the fork. The traceback is of code of its own (``1 / 0``); nothing of it is left
    in ``sys`` (no ``last_value``), and a failure only leaves the work to the kernels."""
    try:
        from ipykernel.zmqshell import ZMQInteractiveShell
        from IPython.core import ultratb

        traits = ZMQInteractiveShell.class_traits()
        formatter = ultratb.AutoFormattedTB(  # type: ignore[no-untyped-call]
            mode=traits["xmode"].default_value,
            theme_name=traits["colors"].default_value,
            tb_offset=1,
        )
        try:
            exec(compile("1 / 0", "<template>", "exec"), {})
        except ZeroDivisionError as exc:
            formatter.structured_traceback(type(exc), exc, exc.__traceback__)
    except Exception as exc:
        sys.stderr.write(f"template: tracebacks not prepared: {type(exc).__name__}: {exc}\n")


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
        warm_tracebacks()  # before the listing: the modules it imports are listed too
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


def main() -> None:
    config = json.loads(sys.argv[1])
    reserve = apply_limits(config.get("limits", []))
    if config.get("forwarder"):
        start_forwarder(config["forwarder"])
    if config.get("mode") == "template":
        # template_program.py, sent as text; it uses this program's functions.
        template: dict[str, Any] = {"__name__": "__template__"}
        exec(config["template"], template)
        template["template_main"](config, globals(), reserve)
        return
    try:
        preload(list(config.get("preload", ())))
        run_kernel(sys.argv[2:])  # the arguments of ipykernel_launcher
    except Exception as exc:
        report_start_failure(exc, reserve)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
