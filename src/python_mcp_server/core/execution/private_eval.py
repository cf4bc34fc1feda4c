"""Runs ``kernel_probe`` inside a kernel without touching the user's namespace.

The request is a *silent* execute_request with empty code, no history, and one user
expression: a lambda that executes the probe's source in a fresh dict and returns its JSON
answer. Silent requests do not bump the execution count, update ``_``/``Out`` or publish
anything, so the user sees no trace. Like every request it is matched to its reply by
msg_id, and it queues behind a running cell like any shell request.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
from pathlib import Path
from typing import Any

from python_mcp_server.core.execution import kernel_probe
from python_mcp_server.core.sessions.kernel_client import KernelClient
from python_mcp_server.errors import KernelUnresponsiveError, ServerError
from python_mcp_server.infra.kernels.base import Message


@functools.lru_cache(maxsize=1)
def probe_source() -> str:
    """The probe module's source text, shipped to kernels as is."""
    return Path(kernel_probe.__file__).read_text(encoding="utf-8")


def probe_expression(action: str, arguments: dict[str, Any]) -> str:
    """One Python expression that runs a probe action and evaluates to its JSON answer."""
    request = json.dumps({"action": action, **arguments})
    return (
        f"(lambda g: (exec({probe_source()!r}, g), g['main']({request!r}))[1])"
        "({'__name__': '__mcp_probe__'})"
    )


def unrepr(text: str) -> str:
    """The string whose repr is ``text``.

    The probe answers in printable ASCII without single quotes, whose repr only doubles
    backslashes: undoing that is a replace, not a parse of megabytes of literal.
    """
    inner = text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == "'" and "'" not in inner:
        return inner.replace("\\\\", "\\")
    value = ast.literal_eval(text)
    if not isinstance(value, str):
        raise ServerError("the kernel gave an unexpected answer")
    return value


def _ignore(_message: Message) -> None:
    return None


async def run_probe(
    client: KernelClient, action: str, arguments: dict[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Run one probe action in the kernel and return its answer.

    Raises KernelUnresponsiveError on timeout (the request stays queued in the kernel and
    its late reply is dropped), KernelDiedError if the kernel ends, ServerError if the
    probe itself failed in the kernel.
    """
    execution = client.start_execute(
        "",
        on_iopub=_ignore,
        on_stdin=None,
        silent=True,
        store_history=False,
        user_expressions={"answer": probe_expression(action, arguments)},
    )
    try:
        reply = await execution.wait(timeout)
    except asyncio.TimeoutError as exc:
        execution.cancel()
        raise KernelUnresponsiveError(
            f"the kernel did not answer within {timeout:g} s ({action})"
        ) from exc
    content = reply.get("content", {})
    answer = content.get("user_expressions", {}).get("answer")
    if content.get("status") != "ok" or not isinstance(answer, dict):
        raise ServerError(f"the kernel could not run {action}: {content.get('evalue', '')}")
    if answer.get("status") != "ok":
        raise ServerError(
            f"the kernel could not run {action}: {answer.get('ename')}: {answer.get('evalue')}"
        )
    text = answer.get("data", {}).get("text/plain", "")
    decoded = json.loads(unrepr(text))
    if not isinstance(decoded, dict):
        raise ServerError(f"the kernel gave an unexpected answer to {action}")
    return decoded
