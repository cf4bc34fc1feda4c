"""The live fork templates of a launcher: one per key, each started once even when asked
concurrently, at most ``MAX_TEMPLATES`` at a time.

Both forking launchers (``template_launcher.py`` for unsandboxed kernels,
``sandbox_fork.py`` for sandboxed ones) keep their templates here; they differ in how a
template starts and how it is ended, which they hand in as two functions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from python_mcp_server.infra.kernels.base import KernelLaunchRequest

logger = logging.getLogger(__name__)

#: Most templates alive at once (each holds its preload's memory).
MAX_TEMPLATES = 4


class Template(Protocol):
    """What the set asks of a template."""

    @property
    def pid(self) -> int: ...

    def is_alive(self) -> bool: ...


T = TypeVar("T", bound=Template)
K = TypeVar("K", bound=Hashable)


class TemplateSet(Generic[K, T]):
    """Templates by key; ``start`` makes one (None when it cannot), ``end`` ends one."""

    def __init__(
        self,
        start: Callable[[K, KernelLaunchRequest], Awaitable[T | None]],
        end: Callable[[T], Awaitable[None]],
    ) -> None:
        self._start = start
        self._end = end
        self._templates: dict[K, T] = {}
        self._starting: dict[K, asyncio.Future[T | None]] = {}
        #: Why the last template could not serve, if it could not (health shows it).
        self.problem: str | None = None

    @property
    def templates(self) -> list[T]:
        return list(self._templates.values())

    @property
    def starting(self) -> list[asyncio.Future[T | None]]:
        return list(self._starting.values())

    def note_problem(self, text: str) -> None:
        self.problem = text
        logger.warning("%s", text)

    async def get(self, key: K, request: KernelLaunchRequest) -> T | None:
        """The live template for ``key``, started if there is none (None: none can serve)."""
        template = self._templates.get(key)
        if template is not None and template.is_alive():
            return template
        if template is not None:
            self.note_problem(f"the fork template (pid {template.pid}) ended; starting another")
            await self.drop(key, template)
        pending = self._starting.get(key)
        if pending is None:
            if len(self._templates) >= MAX_TEMPLATES:
                return None
            pending = asyncio.ensure_future(self._start_and_keep(key, request))
            self._starting[key] = pending
            pending.add_done_callback(lambda _: self._starting.pop(key, None))
        return await asyncio.shield(pending)

    async def _start_and_keep(self, key: K, request: KernelLaunchRequest) -> T | None:
        # Kept here, not by whoever asked: a template whose requester was cancelled
        # meanwhile is found by the next request, and ended with the others.
        template = await self._start(key, request)
        if template is not None:
            self._templates[key] = template
        return template

    async def drop(self, key: K, template: T) -> None:
        """Forget and end one template (it failed, or died)."""
        if self._templates.get(key) is template:
            del self._templates[key]
        await self._end(template)

    async def end_all(self) -> None:
        """End every template (an environment's packages changed: their preload is stale)."""
        templates, self._templates = list(self._templates.values()), {}
        await asyncio.gather(*(self._end(t) for t in templates), return_exceptions=True)


class TemplateOwner(Generic[K, T]):
    """What a forking launcher shows of its templates (tests and health read it)."""

    _set: TemplateSet[K, T]

    @property
    def templates(self) -> list[T]:
        return self._set.templates

    @property
    def template_problem(self) -> str | None:
        """Why the last template could not serve, if it could not (health shows it)."""
        return self._set.problem
