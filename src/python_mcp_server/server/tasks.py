"""Long calls as MCP tasks (the ``io.modelcontextprotocol/tasks`` extension).

``run_python_code``, ``run_script`` and the package install/uninstall tools are
registered with ``task_tool``: a client that declares the tasks extension may run them
as a task (``tools/call`` answers at once with a task id; ``tasks/get`` reports the
status and, at the end, the result; ``tasks/cancel`` stops it). A client without it gets
the ordinary synchronous call. fastmcp-tasks runs the task on a Docket worker; task state
lives in Docket's backend (``MCP_TASKS_URL``, in memory by default); in memory, the worker
runs only while a task may exist (``server/task_worker.py``). With a shared store
(``MCP_REDIS_URL``) every replica of a deployment runs a worker on one queue: any of them
may run a task, and any of them answers ``tasks/get`` and ``tasks/cancel`` for it (a
cancel reaches the worker running it through Redis). A task whose replica stopped before
it ended is handed to another worker after ``MCP_TASK_LOST_AFTER`` seconds, which reports
it lost (``TASK_LOST``) and never runs it again. A task belongs to the principal that
started it: fastmcp-tasks keys it by the caller's token (client id and subject), so another
principal asking any replica about it is told it does not exist.

A task runs outside FastMCP's middleware, so ``task_tool`` translates the project's
errors itself (the same ``CODE: message`` text as a synchronous call), fits the result
into the result budget (``MCP_MAX_RESULT_CHARS``) and keeps the task's status message
current ("running 12 s", plus the latest output lines where the tool reports them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import mcp_types
import pydantic_core
from fastmcp import Context, FastMCP
from fastmcp.server.extensions import MethodBinding, ToolCallContinuation, ToolCallOutcome
from fastmcp.tools.base import ToolResult
from fastmcp.utilities.tasks import TaskConfig
from fastmcp_tasks import TasksExtension
from mcp_types import TextContent
from pydantic import BaseModel

from python_mcp_server.errors import TaskLostError
from python_mcp_server.infra.task_store import is_outage, ping, unavailable
from python_mcp_server.server.middleware.errors import protocol_error, translate
from python_mcp_server.server.result_budget import ResultBudget
from python_mcp_server.server.task_worker import Demand, on_demand_worker
from python_mcp_server.settings import Settings

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

#: How often a client is told to poll, and how often a running task's status is renewed.
POLL_INTERVAL = timedelta(seconds=1)
STATUS_INTERVAL = 1.0
#: Lines of recent output a status message carries.
STATUS_LINES = 5
STATUS_CHARS = 400

#: How long a task call may wait on the task store before it is reported unavailable.
STORE_TIMEOUT = 10.0
#: How soon the worker tries the task store again after losing it.
RECONNECTION_DELAY = timedelta(seconds=1)
#: How long the in-memory worker's read of its queue blocks. A new task ends the read at
#: once (an XADD ends a blocked XREADGROUP); the worker runs only while a task may exist
#: (``server/task_worker.py``) and stops after a read that found nothing, so this is about
#: how long it outlives the last task. Docket's default of 50 ms was 20 wake-ups a
#: second. A shared store keeps the default, since the same loop sweeps for tasks of
#: replicas that stopped.
MEMORY_CHECK_INTERVAL = timedelta(seconds=1)

TASK = TaskConfig(mode="optional", poll_interval=POLL_INTERVAL)


def asked_for_progress(ctx: Context) -> bool:
    """Whether the client sent a progress token with this call."""
    request = ctx.request_context
    meta: Any = request.meta if request is not None else None
    return bool(meta) and any(meta.get(k) is not None for k in ("progressToken", "progress_token"))


class ProjectTasks(TasksExtension):
    """The tasks extension as this server runs it.

    A call whose caller asked for progress notifications runs in the foreground: the
    client is watching it, the server may answer any call synchronously, and doing so
    keeps those notifications coming.

    A shared store (Redis) that does not answer makes task calls fail at once with
    ``TASK_STORE_UNAVAILABLE`` (within ``STORE_TIMEOUT``) instead of hanging: a JSON-RPC
    error, since no task was made or can be read (``data.code`` repeats the code), while
    synchronous calls, which never touch it, go on working; Docket's worker reconnects by
    itself when the store is back. The server does not start while the store is
    unreachable.
    """

    def __init__(self, *, store_url: str, **options: Any) -> None:
        super().__init__(url=store_url, **options)
        self.store_url = store_url
        self.shared = not store_url.startswith("memory://")
        #: In memory, the worker runs on demand (made with the lifespan).
        self.demand: Demand | None = None

    def wake_worker(self) -> None:
        """A task may have been made: the in-memory worker runs until none is left."""
        if self.demand is not None:
            self.demand.wake()

    async def intercept_tool_call(
        self,
        params: mcp_types.CallToolRequestParams,
        context: Context,
        call_next: ToolCallContinuation,
    ) -> ToolCallOutcome:
        if asked_for_progress(context):
            return await call_next()
        foreground = False
        # Only making the task is bounded in time; a call run in the foreground is not.
        scope = anyio.CancelScope(deadline=anyio.current_time() + STORE_TIMEOUT)

        async def in_foreground() -> ToolCallOutcome:
            nonlocal foreground
            foreground = True
            scope.deadline = math.inf
            return await call_next()

        with scope:
            try:
                return await super().intercept_tool_call(params, context, in_foreground)
            except Exception as exc:
                if foreground or not is_outage(exc):
                    raise
                raise protocol_error(unavailable(self.store_url, exc)) from exc
            finally:
                if not foreground:
                    self.wake_worker()
        timeout = TimeoutError(f"no answer in {STORE_TIMEOUT:g} s")
        raise protocol_error(unavailable(self.store_url, timeout))

    def methods(self) -> Sequence[MethodBinding]:
        return [
            dataclasses.replace(
                binding,
                handler=self._guarded(binding.handler, wakes=binding.method == "tasks/update"),
            )
            for binding in super().methods()
        ]

    def _guarded(
        self, handler: Callable[..., Awaitable[Any]], *, wakes: bool
    ) -> Callable[..., Awaitable[Any]]:
        """``handler`` answering ``TASK_STORE_UNAVAILABLE`` when the store does not;
        ``wakes``: it may start a task's next leg (``tasks/update``)."""

        @functools.wraps(handler)
        async def guarded(ctx: Any, params: Any) -> Any:
            try:
                with anyio.fail_after(STORE_TIMEOUT):
                    return await handler(ctx, params)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                raise protocol_error(unavailable(self.store_url, exc)) from exc
            finally:
                if wakes:
                    self.wake_worker()

        return guarded

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        if self.shared:
            await ping(self.store_url, STORE_TIMEOUT)
            async with super().lifespan():
                yield
            return
        demand = Demand()
        async with contextlib.AsyncExitStack() as stack:
            with on_demand_worker(demand):
                await stack.enter_async_context(super().lifespan())
            self.demand = demand
            try:
                yield
            finally:
                self.demand = None
                demand.close()


def queue_name(settings: Settings) -> str:
    """The Docket name (the prefix of every Redis key) of this server's task queue.

    In memory it is private to this server (a fresh name, so two servers in one process
    never take each other's tasks). A shared store uses one name per deployment: the
    gateway namespace and the gateway's URL, so replicas answer for each other while two
    deployments on one Redis (other gateways or other namespaces) never mix.
    """
    if settings.tasks_url.startswith("memory://"):
        return f"python-mcp-server-{secrets.token_hex(6)}"
    gateway = (settings.gateway_url or "").rstrip("/")
    digest = hashlib.sha256(gateway.encode()).hexdigest()[:12]
    return f"python-mcp-server:{settings.gateway_namespace}:{digest}"


def tasks_extension(settings: Settings) -> ProjectTasks:
    """The tasks extension over Docket at ``MCP_TASKS_URL`` (``MCP_REDIS_URL``)."""
    in_memory = settings.tasks_url.startswith("memory://")
    return ProjectTasks(
        store_url=settings.tasks_url,
        name=queue_name(settings),
        # Every session may run one call while installs run beside them.
        concurrency=settings.max_sessions + settings.max_concurrent_executions,
        reconnection_delay=RECONNECTION_DELAY,
        redelivery_timeout=timedelta(seconds=settings.task_lost_after),
        minimum_check_interval=MEMORY_CHECK_INTERVAL if in_memory else None,
    )


def running_in_task() -> bool:
    """Whether this code runs as a background task on the Docket worker."""
    from docket.dependencies import current_execution

    try:
        current_execution.get()
    except LookupError:
        return False
    return True


def redelivered_task() -> bool:
    """Whether this task was handed to this worker after the worker running it stopped
    (Docket redelivers a task whose claim was not renewed within ``MCP_TASK_LOST_AFTER``).
    """
    from docket.dependencies import current_execution

    try:
        return bool(current_execution.get().redelivered)
    except LookupError:
        return False


async def set_task_status(message: str) -> None:
    """Replace the running task's status message (what ``tasks/get`` shows)."""
    from docket.dependencies import current_execution

    with contextlib.suppress(LookupError):
        await current_execution.get().progress.set_message(message)


def status_message(elapsed: float, recent: str) -> str:
    """``running 12 s`` and, when there is output, its last lines."""
    text = f"running {elapsed:.0f} s"
    lines = [line for line in recent.splitlines() if line.strip()][-STATUS_LINES:]
    if lines:
        tail = "\n".join(lines)[-STATUS_CHARS:]
        text += f"; latest output:\n{tail}"
    return text


class TaskProgress:
    """A progress callback that keeps the latest output between reports."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._recent = ""

    async def __call__(self, elapsed: float, recent: str) -> None:
        if recent:
            self._recent = recent
        await self._ctx.report_progress(elapsed, None, status_message(elapsed, self._recent))


async def _heartbeat() -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(STATUS_INTERVAL)
        with contextlib.suppress(Exception):
            await set_task_status(status_message(time.monotonic() - started, ""))


def as_tool_result(value: Any) -> Any:
    """A pydantic result as the ToolResult FastMCP would make of it (other values as
    they are), so the result budget can measure it."""
    if isinstance(value, ToolResult) or not isinstance(value, BaseModel):
        return value
    structured = value.model_dump(mode="json")
    text = pydantic_core.to_json(structured).decode()
    return ToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def task_tool(
    mcp: FastMCP, *, budget: ResultBudget, heartbeat: bool = True, **options: Any
) -> Callable[[F], F]:
    """``@mcp.tool(...)`` for a tool that may run as a task.

    ``budget`` fits the result (a task's result passes no middleware); ``heartbeat``
    renews the status message while a task runs; a tool that reports its own progress
    (with output) passes False.
    """

    def decorate(fn: F) -> F:
        name = options.get("name") or fn.__name__

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if redelivered_task():
                # Its code may have run, in part or whole, on the replica that stopped: a
                # second run could repeat what it did. The client decides what to do.
                lost = TaskLostError(
                    f"the replica running this {name} task stopped before it ended; it "
                    "was not run again (its code may have run, in part or whole: check "
                    "the session's state before running it again)"
                )
                raise translate(lost, name) from None
            beat = (
                asyncio.create_task(_heartbeat(), name=f"{name}-status")
                if heartbeat and running_in_task()
                else None
            )
            try:
                result = as_tool_result(await fn(*args, **kwargs))
                # A synchronous call's result is fitted by ResultBudgetMiddleware on its
                # way out; only a task's, which passes no middleware, is fitted here.
                if isinstance(result, ToolResult) and running_in_task():
                    fitted = result
                    result = await anyio.to_thread.run_sync(lambda: budget.fit(fitted, name=name))
                return result
            except Exception as exc:
                raise translate(exc, name) from exc
            finally:
                if beat is not None:
                    beat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await beat

        mcp.tool(task=TASK, **options)(wrapper)
        return fn

    return decorate
