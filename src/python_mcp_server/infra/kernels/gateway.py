"""Kernels on a Jupyter Kernel Gateway or Enterprise Gateway, shared by every replica.

Each session's kernel is started, interrupted, restarted and deleted through the
gateway's REST API (``/api/kernels``) and spoken to over its websocket
(``websocket_channels``).

Replicas: a session's kernel id is derived from the session id (and a namespace), so any
server pointed at the gateway finds a session's kernel with one ``GET`` and no shared
state beyond the gateway itself. The kernel id exists exactly as long as the session:
restarts happen in place (``POST .../restart``), and only deleting the session deletes
the kernel. A ``404`` therefore always means "deleted". Servers that stop, or let a
session idle, only close their websocket; the gateway's culler ends abandoned kernels.

Death: a kernel that dies is restarted by the gateway, which says so on the websocket
(``restarting``, or ``dead`` when it gives up); a ``shutdown_reply`` nobody here asked
for means another server restarted or deleted the kernel; a closed websocket is checked
against the REST status.

Start-up: the gateway's kernelspec starts the kernel, so a launch request's ``extra_args``
never reach it (``passes_kernel_args`` is False); the kernel factory runs what they would
have set up (the thread-context line, ``core/sessions/thread_context.py``) as a silent
execute once it is connected, after a start and on every attach.

Users: every start names the kernel's user (``KERNEL_USERNAME``, from ``username_for``):
Enterprise Gateway authorizes starts by it, and its refusal (``403``) becomes
``GatewayForbiddenError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from python_mcp_server.errors import GatewayError, GatewayForbiddenError, KernelStartError
from python_mcp_server.infra.kernels.base import (
    KernelChannels,
    KernelExit,
    KernelLauncher,
    KernelLaunchRequest,
    LaunchedKernel,
)
from python_mcp_server.infra.kernels.websocket_channels import (
    KernelEvent,
    WebsocketKernelChannels,
)

logger = logging.getLogger(__name__)

#: The kernel's environment entries that stay on the server's side: the gateway supplies
#: its own PATH and HOME (a gateway drops any non-``KERNEL_`` variable it does not allow).
SERVER_ONLY_VARIABLES = frozenset({"PATH", "HOME"})

#: How a kernel incarnation this server attached to ended.
Fate = Literal["restarted", "dead", "deleted", "lost", "killed"]


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway is and how kernels are named on it."""

    url: str
    token: str | None
    namespace: str
    request_timeout: float = 30.0
    start_timeout: float = 60.0
    #: ``KERNEL_*`` variables sent with every start (from the server's environment, as
    #: jupyter_server's gateway client does): Enterprise Gateway's kernel image, volumes...
    kernel_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def websocket_url(self) -> str:
        base = self.url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base[len("https://") :]
        if base.startswith("http://"):
            return "ws://" + base[len("http://") :]
        return base

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}


def session_kernel_id(namespace: str, session_id: str) -> str:
    """The kernel id of a session: the same on every replica, a valid version-4 UUID.

    Enterprise Gateway accepts a client's kernel id only when it is a v4 UUID (KERNEL_ID),
    so the digest's bits are set to that version rather than using uuid5.
    """
    digest = hashlib.sha256(f"python-mcp-server\0{namespace}\0{session_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


class GatewayApi:
    """The gateway's REST API for kernels, with the token; errors become GatewayError."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            headers=config.headers,
            timeout=httpx.Timeout(config.request_timeout, connect=10.0),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        timeout: float | None = None,
        passthrough: frozenset[int] = frozenset({404}),
    ) -> httpx.Response:
        """Send a request; ``passthrough`` statuses (404) are returned, other failures raise."""
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"could not reach the gateway at {self.config.url} ({method} {path}): {exc!r}"
            ) from exc
        if response.is_success or response.status_code in passthrough:
            return response
        raise GatewayError(
            f"the gateway answered {method} {path} with HTTP {response.status_code}: "
            f"{_gateway_reason(response)}"
        )

    async def start_kernel(self, body: Mapping[str, Any]) -> httpx.Response:
        """``POST /api/kernels``; a refusal (403: e.g. Enterprise Gateway does not authorize
        the ``KERNEL_USERNAME``) raises ``GatewayForbiddenError`` naming the user."""
        response = await self.request(
            "POST",
            "/api/kernels",
            json=body,
            timeout=self.config.start_timeout,
            passthrough=frozenset({403, 404}),
        )
        if response.status_code == 403:
            user = body.get("env", {}).get("KERNEL_USERNAME")
            raise GatewayForbiddenError(
                f"the gateway refused to start a kernel for user {user!r} (KERNEL_USERNAME), "
                f"HTTP 403: {_gateway_reason(response).rstrip('.')}. Ask its operator to "
                "authorize this user, or set MCP_GATEWAY_KERNEL_USERNAME to one it authorizes"
            )
        return response

    async def aclose(self) -> None:
        await self._http.aclose()


def _gateway_reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or body)[:300]
    return str(body)[:300]


class GatewayKernel(LaunchedKernel):
    """One session's kernel on the gateway, as this server is attached to it."""

    #: Interrupts go through ``POST .../interrupt``: the gateway signals the process or
    #: sends interrupt_request, whichever the kernelspec's interrupt_mode says.
    interrupt_mode = "signal"
    shared = True

    def __init__(self, api: GatewayApi, kernel_id: str, session_id: str) -> None:
        self._api = api
        self.kernel_id = kernel_id
        self.session_id = session_id
        self._exit: KernelExit | None = None
        self._fate: Fate | None = None
        self._ended = asyncio.Event()
        #: This server is restarting or deleting the kernel: its shutdown_reply is expected.
        self._acting = False
        self._checks: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> str:
        return f"/api/kernels/{self.kernel_id}"

    @property
    def pid(self) -> int | None:
        return None

    @property
    def fate(self) -> Fate | None:
        """How this incarnation ended, once it has."""
        return self._fate

    async def connect(self) -> KernelChannels:
        return await WebsocketKernelChannels.open(
            f"{self._api.config.websocket_url}{self.path}/channels",
            headers=self._api.config.headers,
            on_event=self._on_event,
            timeout=self._api.config.request_timeout,
        )

    def is_alive(self) -> bool:
        return self._exit is None

    async def wait_exit(self) -> KernelExit:
        await self._ended.wait()
        assert self._exit is not None
        return self._exit

    def _end(self, fate: Fate, reason: str) -> None:
        if self._exit is None:
            self._fate = fate
            self._exit = KernelExit(None, reason)
            self._ended.set()

    # --- what the gateway says -----------------------------------------------------------
    def _on_event(self, event: KernelEvent, reason: str) -> None:
        if self._exit is not None or self._acting:
            return
        if event == "restarting" or event == "restart":
            self._end("restarted", reason + "; its variables are gone")
        elif event == "dead":
            self._end("dead", reason)
        elif event == "shutdown":
            self._end("deleted", reason + " (its session was deleted by another server)")
        else:
            task = asyncio.create_task(self._check_after_close(reason))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    async def _check_after_close(self, reason: str) -> None:
        try:
            response = await self._api.request("GET", self.path, timeout=10.0)
        except GatewayError as exc:
            self._end("lost", f"{reason}; {exc.message}")
            return
        except Exception as exc:  # e.g. the launcher closed while checking
            self._end("lost", f"{reason}; {exc!r}")
            return
        if response.status_code == 404:
            self._end("deleted", "the kernel no longer exists on the gateway")
        else:
            self._end("lost", reason)

    def backend_gave_up(self) -> bool:
        return self._fate in ("restarted", "dead")

    async def reported_state(self) -> str | None:
        """The gateway's execution_state of the kernel (it tracks user requests only)."""
        try:
            response = await self._api.request("GET", self.path, timeout=10.0)
        except GatewayError:
            return None
        if response.status_code == 404:
            return None
        try:
            state = response.json().get("execution_state")
        except ValueError:
            return None
        return state if isinstance(state, str) else None

    # --- actions -----------------------------------------------------------------------
    async def send_interrupt_signal(self) -> None:
        if self._exit is not None:
            return
        try:
            await self._api.request("POST", f"{self.path}/interrupt", timeout=10.0)
        except GatewayError as exc:  # the grace period then restarts the kernel
            logger.warning("interrupt of kernel %s failed: %s", self.kernel_id, exc.message)

    async def kill(self) -> None:
        """Delete the kernel on the gateway (the session ends for every replica)."""
        if self._fate in ("deleted", "killed"):
            return
        self._acting = True
        try:
            await self._api.request("DELETE", self.path)
        except GatewayError as exc:  # the gateway's culler ends what could not be deleted
            logger.warning("could not delete kernel %s: %s", self.kernel_id, exc.message)
        self._end("killed", "the kernel was shut down")

    async def restart_in_place(self) -> bool:
        """Give the kernel id a fresh process unless the gateway already did."""
        if self._fate in ("restarted", "deleted", "killed"):
            return True  # already fresh, or gone: finding it again tells which
        self._acting = True
        try:
            gone = await self._restart()
        except BaseException:
            self._acting = False  # still this server's view of the kernel: keep listening
            raise
        if gone:
            self._end("deleted", "the kernel no longer exists on the gateway")
        else:
            self._end("restarted", "the kernel was restarted")
        return True

    async def _restart(self) -> bool:
        """Restart through REST; True when the kernel no longer exists.

        A kernel the gateway gave up on is gone from its map: it is not started again
        here, since every attached replica would do so at once (two overlapping starts of
        one id leave a process the gateway no longer knows). ``backend_gave_up`` tells
        the session manager, whose registry lets one replica start it.
        """
        timeout = self._api.config.start_timeout
        if self._fate == "dead":  # the gateway gave up on it: it may be gone from its map
            response = await self._api.request("GET", self.path)
            if response.status_code == 404:
                return True
        response = await self._api.request("POST", f"{self.path}/restart", timeout=timeout)
        return response.status_code == 404


def start_body(
    kernel_id: str, session_id: str, env: Mapping[str, str], username: str | None = None
) -> dict[str, Any]:
    """The ``POST /api/kernels`` body: the session's id, tags, the kernel's environment
    and, when given, the user the kernel is for (Enterprise Gateway authorizes by it)."""
    kernel_env = {
        **env,
        # Enterprise Gateway takes the kernel id from here (Kernel Gateway: the body).
        "KERNEL_ID": kernel_id,
        "KERNEL_MCP_SESSION_ID": session_id,
    }
    if username is not None:
        kernel_env["KERNEL_USERNAME"] = username
    return {"kernel_id": kernel_id, "env": kernel_env}


class GatewayLauncher(KernelLauncher):
    """Starts sessions' kernels on a gateway; every replica finds them by session id.

    ``KernelLaunchRequest.label`` is the session id (the warm pool is off with a gateway,
    so every launch is for a named session). ``username_for`` gives the ``KERNEL_USERNAME``
    of a session's kernel (it may refuse, raising before the gateway is asked).
    """

    name = "gateway"
    shared_sessions = True
    preload_mode = "none"  # a gateway starts its kernels its own way
    passes_kernel_args = False  # ...by its kernelspec: no argument of ours reaches them

    def __init__(
        self,
        config: GatewayConfig,
        default_env: Mapping[str, str] | None = None,
        username_for: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        self._username_for = username_for
        self._api = GatewayApi(config)
        #: The environment of kernels started anew for sessions this server did not launch.
        self._default_env = dict(default_env or {})

    @property
    def sharing_scope(self) -> str:
        return self.config.namespace

    def kernel_id_for(self, session_id: str) -> str:
        return session_kernel_id(self.config.namespace, session_id)

    def kernel_env(self, request: KernelLaunchRequest) -> dict[str, str]:
        """What the kernel is asked to see: the project's variables and its working dir.

        Kernel Gateway keeps ``KERNEL_*`` variables and those in its ``env_whitelist``;
        Enterprise Gateway starts the kernel in ``KERNEL_WORKING_DIR`` when
        ``EG_MIRROR_WORKING_DIRS`` is on (Kernel Gateway: in its own working directory).
        """
        return self.env_for(request.env, str(request.cwd))

    @staticmethod
    def env_for(env: Mapping[str, str], working_dir: str) -> dict[str, str]:
        kept = {k: v for k, v in env.items() if k not in SERVER_ONLY_VARIABLES}
        kept["KERNEL_WORKING_DIR"] = working_dir
        return kept

    def start_body(self, session_id: str, env: Mapping[str, str]) -> dict[str, Any]:
        """The start body of a session's kernel; raises when its user name is refused."""
        username = self._username_for(session_id) if self._username_for else None
        return start_body(
            self.kernel_id_for(session_id),
            session_id,
            {**self.config.kernel_env, **env},
            username,
        )

    async def launch(self, request: KernelLaunchRequest) -> LaunchedKernel:
        session_id = request.label
        kernel_id = self.kernel_id_for(session_id)
        body = self.start_body(session_id, self.kernel_env(request))
        response = await self._api.start_kernel(body)
        if not response.is_success:
            raise KernelStartError(
                f"the gateway did not start a kernel: {_gateway_reason(response)}"
            )
        started = response.json().get("id")
        if started != kernel_id:
            with contextlib.suppress(GatewayError):
                await self._api.request("DELETE", f"/api/kernels/{started}")
            raise GatewayError(
                f"the gateway started kernel {started!r} instead of {kernel_id!r}: it ignores "
                "the kernel ids clients ask for, so other replicas could not find the session"
            )
        return GatewayKernel(self._api, kernel_id, session_id)

    async def find_session_kernel(self, session_id: str) -> LaunchedKernel | None:
        kernel_id = self.kernel_id_for(session_id)
        response = await self._api.request("GET", f"/api/kernels/{kernel_id}")
        if response.status_code == 404:
            return None
        return GatewayKernel(self._api, kernel_id, session_id)

    async def aclose(self) -> None:
        await self._api.aclose()
