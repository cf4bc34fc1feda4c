"""Turns finished executions and kernel replacements into cells of the session's notebook.

``NotebookRecorder`` is an execution hook (``after``) and a kernel-replacement hook: each
execution becomes a code cell with nbformat outputs built from what the collector kept
(streams, rich displays, images with their bytes, the last expression, the error); a kernel
replaced mid-session becomes a markdown note where it happened. Each is also published to
the live feed, with a ``running`` event when an execution starts, for the browser view.
"""

from __future__ import annotations

import base64
from typing import Any

from python_mcp_server.core.execution.output_collector import CollectedOutput
from python_mcp_server.core.execution.service import ExecutionHook, ExecutionRequest
from python_mcp_server.core.notebooks.cells import CellStore
from python_mcp_server.core.notebooks.live import LiveFeed
from python_mcp_server.core.sessions.session import (
    ExecutionOutcome,
    KernelSession,
    ProgressCallback,
)

#: ExecutionRequest.notes keys other tools set: the source a notebook shows instead of the
#: code sent to the kernel, and a note placed before the cell (e.g. a script run).
NOTEBOOK_SOURCE = "notebook_source"
NOTEBOOK_ORIGIN = "notebook_origin"

#: Image types that nbformat stores base64-encoded (SVG is text).
_BINARY_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif"})


def _stream(name: str, text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def outputs_of(collected: CollectedOutput, execution_count: int | None) -> list[dict[str, Any]]:
    """nbformat v4 outputs for one execution, in the order a notebook shows them."""
    outputs: list[dict[str, Any]] = []
    if collected.stdout:
        outputs.append(_stream("stdout", collected.stdout))
    if collected.stderr:
        outputs.append(_stream("stderr", collected.stderr))
    for item in collected.outputs:
        if item.text is not None:
            outputs.append(
                {"output_type": "display_data", "data": {item.mime_type: item.text}, "metadata": {}}
            )
    for image in collected.images:
        data = (
            base64.b64encode(image.data).decode("ascii")
            if image.mime_type in _BINARY_IMAGES
            else image.data.decode("utf-8", "replace")
        )
        outputs.append(
            {"output_type": "display_data", "data": {image.mime_type: data}, "metadata": {}}
        )
    if collected.result is not None:
        outputs.append(
            {
                "output_type": "execute_result",
                "execution_count": execution_count,
                "data": {"text/plain": collected.result},
                "metadata": {},
            }
        )
    if collected.error is not None:
        outputs.append(
            {
                "output_type": "error",
                "ename": collected.error.ename,
                "evalue": collected.error.evalue,
                "traceback": list(collected.error.traceback),
            }
        )
    return outputs


class NotebookRecorder(ExecutionHook):
    """Records every execution of every session into the cell store."""

    def __init__(self, cells: CellStore, feed: LiveFeed) -> None:
        self._cells = cells
        self._feed = feed

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        source = request.notes.get(NOTEBOOK_SOURCE, request.code)
        self._feed.publish(session.key, {"type": "running", "source": source})

    def watch(self, session: KernelSession, request: ExecutionRequest) -> ProgressCallback | None:
        """While someone watches the session, stream the running cell's latest output."""
        session_id = session.key
        if not self._feed.watching(session_id):
            return None

        async def stream(_elapsed: float, recent: str) -> None:
            if recent:
                self._feed.publish(session_id, {"type": "output", "tail": recent})

        return stream

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        result = outcome.result
        outputs = outputs_of(outcome.collected, result.execution_count)
        source = str(request.notes.get(NOTEBOOK_SOURCE, request.code))
        origin = request.notes.get(NOTEBOOK_ORIGIN)
        if origin:
            self.note(session.key, str(origin))
        self._cells.append(
            session.key,
            "code",
            source,
            execution_count=result.execution_count,
            outputs=outputs,
        )
        self._feed.publish(
            session.key,
            {
                "type": "cell",
                "cell": {
                    "kind": "code",
                    "source": source,
                    "execution_count": result.execution_count,
                    "outputs": outputs,
                },
            },
        )

    async def kernel_replaced(self, session: KernelSession, reason: str) -> None:
        """Any replacement (restart asked for, crash recovery, the monitor's): a note placed
        before the cell whose execution saw it, since hooks run after the execution."""
        self.note(session.key, f"*Kernel replaced:* {reason}")

    def note(self, session_id: str, text: str) -> None:
        """A markdown note in the notebook of a session (by its manager key: owner and id),
        and to its watchers."""
        self._cells.append(session_id, "note", text)
        self._feed.publish(session_id, {"type": "cell", "cell": {"kind": "note", "source": text}})
