"""Collects a kernel's IOPub output for one execution into a bounded result.

Streams are kept in memory up to a cap; past it, the whole stream is written to a file in
``outputs/`` and only the head stays in memory, so a 10 MB ``print`` costs the server a few
hundred kilobytes. Images are decoded and saved under ``outputs/``; other rich displays
become text items.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from io import TextIOWrapper
from pathlib import Path
from typing import Any

from python_mcp_server.infra.kernels.base import Message
from python_mcp_server.models.execution import ExecutionErrorInfo, OutputItem

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-Z\\-_]")

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}
TEXT_TYPES = ("text/html", "text/markdown", "text/latex", "application/json")


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor codes."""
    return _ANSI.sub("", text)


@dataclass
class SavedImage:
    """An image the execution displayed, saved to the workspace."""

    mime_type: str
    data: bytes
    path: str


class _Stream:
    """One output stream with an in-memory cap and a spill file."""

    def __init__(self, name: str, cap: int, spill_path: Path) -> None:
        self.name = name
        self._cap = cap
        self._spill_path = spill_path
        self._head: list[str] = []
        self._head_len = 0
        self._spill: TextIOWrapper | None = None
        self.total_chars = 0
        self._tail = ""

    def write(self, text: str) -> None:
        self.total_chars += len(text)
        self._tail = (self._tail + text)[-2000:]
        if self._spill is not None:
            self._spill.write(text)
            return
        if self._head_len + len(text) <= self._cap:
            self._head.append(text)
            self._head_len += len(text)
            return
        self._spill_path.parent.mkdir(parents=True, exist_ok=True)
        self._spill = self._spill_path.open("w", encoding="utf-8", errors="replace")
        self._spill.write("".join(self._head))
        self._spill.write(text)
        room = self._cap - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += room

    @property
    def truncated(self) -> bool:
        return self._spill is not None

    def text(self) -> str:
        return "".join(self._head)

    def tail(self) -> str:
        return self._tail

    def close(self) -> Path | None:
        if self._spill is None:
            return None
        self._spill.close()
        return self._spill_path


@dataclass
class CollectedOutput:
    """Everything an execution printed or displayed, bounded."""

    stdout: str
    stderr: str
    result: str | None
    error: ExecutionErrorInfo | None
    outputs: list[OutputItem]
    images: list[SavedImage]
    stdout_path: str | None
    stderr_path: str | None
    truncated: bool


@dataclass
class OutputCollector:
    """Feed it IOPub messages; ask it for the ``CollectedOutput`` when the execution ends."""

    execution_id: str
    workspace: Path
    outputs_dir: Path
    max_chars: int
    result: str | None = None
    error: ExecutionErrorInfo | None = None
    outputs: list[OutputItem] = field(default_factory=list)
    images: list[SavedImage] = field(default_factory=list)
    activity: int = 0

    def __post_init__(self) -> None:
        self._streams = {
            name: _Stream(
                name, self.max_chars, self.outputs_dir / f"{self.execution_id}-{name}.txt"
            )
            for name in ("stdout", "stderr")
        }

    def handle(self, message: Message) -> None:
        """Route one IOPub message (already matched to this execution)."""
        self.activity += 1
        msg_type = message["header"]["msg_type"]
        content: dict[str, Any] = message["content"]
        if msg_type == "stream":
            stream = self._streams.get(content.get("name", "stdout"), self._streams["stdout"])
            stream.write(content.get("text", ""))
        elif msg_type == "execute_result":
            data = content.get("data", {})
            self.result = data.get("text/plain")
            self._add_rich(data, include_plain=False)
        elif msg_type in ("display_data", "update_display_data"):
            self._add_rich(content.get("data", {}), include_plain=True)
        elif msg_type == "error":
            self.error = ExecutionErrorInfo(
                ename=content.get("ename", "Error"),
                evalue=strip_ansi(content.get("evalue", "")),
                traceback=[strip_ansi(line) for line in content.get("traceback", [])],
            )

    def _add_rich(self, data: dict[str, Any], *, include_plain: bool) -> None:
        shown = False
        for mime, ext in IMAGE_TYPES.items():
            if mime in data:
                self._save_image(mime, ext, data[mime])
                shown = True
        for mime in TEXT_TYPES:
            if mime in data:
                value = data[mime]
                text = value if isinstance(value, str) else json.dumps(value)
                self.outputs.append(OutputItem(mime_type=mime, text=text[: self.max_chars]))
                shown = True
        if include_plain and not shown and "text/plain" in data:
            self.outputs.append(
                OutputItem(mime_type="text/plain", text=str(data["text/plain"])[: self.max_chars])
            )

    def _save_image(self, mime: str, ext: str, payload: Any) -> None:
        if mime == "image/svg+xml":
            raw = str(payload).encode("utf-8")
        else:
            try:
                raw = base64.b64decode(str(payload))
            except (binascii.Error, ValueError):
                return
        index = len(self.images) + 1
        path = self.outputs_dir / f"{self.execution_id}-{index}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        relative = path.relative_to(self.workspace).as_posix()
        self.images.append(SavedImage(mime_type=mime, data=raw, path=relative))
        self.outputs.append(OutputItem(mime_type=mime, path=relative))

    def tail(self) -> str:
        """The last output of both streams, for progress messages."""
        return (self._streams["stdout"].tail() + self._streams["stderr"].tail())[-500:]

    def finish(self) -> CollectedOutput:
        paths: dict[str, str | None] = {}
        for name, stream in self._streams.items():
            spilled = stream.close()
            paths[name] = spilled.relative_to(self.workspace).as_posix() if spilled else None
        out, err = self._streams["stdout"], self._streams["stderr"]
        return CollectedOutput(
            stdout=out.text(),
            stderr=err.text(),
            result=self.result,
            error=self.error,
            outputs=self.outputs,
            images=self.images,
            stdout_path=paths["stdout"],
            stderr_path=paths["stderr"],
            truncated=out.truncated or err.truncated,
        )
