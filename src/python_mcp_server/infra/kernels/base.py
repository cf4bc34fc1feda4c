"""The launcher interface: launching is not talking.

A ``KernelLauncher`` starts a kernel somewhere (a local process, a sandboxed process, a
remote gateway) and hands back a ``LaunchedKernel``: the handle that can signal, kill and
watch it, and open ``KernelChannels`` to it. ``KernelChannels`` only moves Jupyter
messages; the messaging protocol itself (execute, complete, inspect, stdin) lives in
``core.kernel_session``. A new backend is one new file implementing these three classes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from python_mcp_server.infra.network.access import NetworkAccess

Channel = Literal["shell", "iopub", "stdin", "control"]
Message = dict[str, Any]
MessageHandler = Callable[[Channel, Message], None]
ClosedHandler = Callable[[str], None]


@dataclass(frozen=True)
class KernelLaunchRequest:
    """What a kernel needs: which interpreter, where it runs, what it sees."""

    python: str
    cwd: Path
    env: Mapping[str, str]
    label: str = "kernel"
    writable_paths: tuple[Path, ...] = ()
    #: Folders a sandboxed kernel must read even where the sandbox hides their parent
    #: (its environment): server-owned paths, never derived from files a kernel wrote.
    readable_paths: tuple[Path, ...] = ()
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    #: Modules imported before the kernel answers (a failure is reported, never fatal).
    preload: tuple[str, ...] = ()
    #: Names of ``env`` variables that belong to this kernel alone (its session's package
    #: folder): a launcher forking kernels from a shared template leaves them out of the
    #: template and applies them in the child.
    own_variables: tuple[str, ...] = ()
    #: This kernel's network access; None: the launcher's default.
    network: NetworkAccess | None = None


@dataclass(frozen=True)
class KernelExit:
    """How a kernel process ended, in words a user can act on."""

    returncode: int | None
    reason: str


class KernelChannels(abc.ABC):
    """A live message link to one kernel: send messages, receive them through a callback."""

    @abc.abstractmethod
    def new_message(self, msg_type: str, content: Mapping[str, Any]) -> Message:
        """Build a Jupyter message (header, parent, metadata, content) signed for this link."""

    @abc.abstractmethod
    def send(self, channel: Channel, message: Message) -> None:
        """Queue a message on a channel; never blocks."""

    @abc.abstractmethod
    def start(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        """Begin delivering every received message to ``on_message``."""

    async def wait_connected(self, timeout: float) -> None:
        """Return once every channel reaches the kernel (no-op where that cannot be known)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop receiving and release sockets."""


class LaunchedKernel(abc.ABC):
    """A running kernel: its process (local or remote) and how to reach it."""

    #: "signal": SIGINT to the process group; "message": interrupt_request on control.
    interrupt_mode: Literal["signal", "message"] = "signal"
    #: Kernel id for remote kernels; a local kernel's id is its label.
    kernel_id: str = ""

    @property
    @abc.abstractmethod
    def pid(self) -> int | None:
        """The kernel's process id as this machine sees it, or None when it runs elsewhere."""

    @abc.abstractmethod
    async def connect(self) -> KernelChannels:
        """Open message channels to the kernel."""

    @abc.abstractmethod
    def is_alive(self) -> bool:
        """Whether the kernel process still runs, as far as is known without waiting."""

    @abc.abstractmethod
    async def wait_exit(self) -> KernelExit:
        """Return once the kernel has ended (however it ended), saying how."""

    @abc.abstractmethod
    async def send_interrupt_signal(self) -> None:
        """Interrupt by signal (only for interrupt_mode == "signal")."""

    @abc.abstractmethod
    async def kill(self) -> None:
        """End the kernel and every process it started; reap them. Idempotent."""

    #: A note for the first result of the session that gets this kernel (set by core).
    notice: str | None = None
    #: Whether other servers may run code in this kernel too (replicas on one gateway).
    shared: bool = False
    #: Why a forking launcher started this kernel the ordinary way (its environment
    #: provides a module the template imported, ...); None when forked or not asked to.
    unforked: str | None = None

    def backend_gave_up(self) -> bool:
        """Whether the backend was restarting this kernel itself (a gateway after a death):
        if the kernel is then gone, the backend gave it up, nobody deleted it, and the
        session's kernel must be started anew (by one server only)."""
        return False

    async def reported_state(self) -> str | None:
        """The backend's own record of the kernel's execution state ("busy", "idle"), for
        backends that keep one (gateways); None when it does not."""
        return None

    def preload_failures(self) -> dict[str, str]:
        """{module: error} for preload modules that failed to import in this kernel."""
        return {}

    def output_tail(self, limit: int = 2000) -> str:
        """The last of what the kernel process wrote (local kernels), for error messages."""
        return ""

    async def restart_in_place(self) -> bool:
        """Restart keeping the same identity where the backend supports it (gateways).

        Returns False when the caller should kill and launch anew instead. True means the
        kernel's identity now names a fresh process (or no longer exists, when it was
        deleted elsewhere): the caller drops this handle and finds the kernel again through
        ``KernelLauncher.find_session_kernel``.
        """
        return False


class KernelLauncher(abc.ABC):
    """Starts kernels of one kind."""

    #: Short name shown in health and logs ("local", "bwrap", "gateway").
    name: str = "abstract"
    #: Whether kernels are shared with other servers (replicas on one gateway): a session's
    #: kernel is then found by session id, restarts keep its identity, and a server that
    #: stops or lets a session idle only detaches from it; deleting the session ends it.
    shared_sessions: bool = False
    #: How a launch request's preload applies: "fork" (from a preloaded template), "start"
    #: (each kernel imports it as it starts) or "none" (this launcher cannot preload).
    preload_mode: Literal["fork", "start", "none"] = "start"
    #: Whether a launch request's ``extra_args`` reach the kernel's command line. False: the
    #: backend starts kernels its own way (a gateway's kernelspec), and the server runs
    #: what they would have set up once the kernel answers (core/sessions/thread_context).
    passes_kernel_args: bool = True

    def forks(self, request: KernelLaunchRequest) -> bool:
        """Whether ``request`` is served by forking a preloaded template (a cheap kernel)."""
        return self.preload_mode == "fork" and bool(request.preload)

    @abc.abstractmethod
    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        """Start a kernel and return once its process exists (not necessarily ready)."""

    @property
    def sharing_scope(self) -> str:
        """What sets apart the sessions of servers sharing kernels (a gateway namespace):
        the scope of the session registry."""
        return ""

    def kernel_id_for(self, session_id: str) -> str:
        """The kernel id a session's kernel has on a shared backend ("" elsewhere)."""
        return ""

    async def find_session_kernel(self, session_id: str) -> LaunchedKernel | None:
        """The running kernel of a session started by another server, if one exists.

        Only launchers with ``shared_sessions`` find anything; the kernel is not connected.
        """
        return None

    def share_folders(self, folders: Sequence[Path]) -> None:
        """Let kernels write these server-made folders (the workspace and its standard
        folders); called once at start, after they exist. Most launchers need nothing."""
        return None

    def start_failure_hint(self, reason: str) -> str | None:
        """What to change when a kernel died while starting for ``reason`` (its exit and
        last output), where this launcher's own limits explain it; None elsewhere."""
        return None

    async def environment_changed(self) -> None:
        """An environment's packages changed: drop anything holding their old imports."""

    async def reap_orphans(self) -> int:
        """End kernels left behind by an earlier server that died; return how many."""
        return 0

    async def aclose(self) -> None:
        """Release launcher-wide resources (HTTP clients, folders)."""
