"""Collects a kernel's IOPub output for one execution into a bounded result.

Streams are kept in memory up to a cap; past it, the stream goes on into a file in
``outputs/`` (itself capped per call and per session, see ``core/workspace/outputs.py``)
and only its head and its end stay in memory, so a 10 MB ``print`` costs the server a few
hundred kilobytes. Images are decoded and saved under ``outputs/``; other rich displays become
text items. The whole result is bounded: at most ``max_displays`` display items, display
text within ``max_chars`` in total, images held in memory within ``max_image_bytes`` (the
rest are listed as ``unattached``; the server edge decides what goes inline, see
``server/inline_images.py``); what is left out is counted and said in the result's message.

``handle`` runs inside the kernel client's message reader: it never raises. A file that
cannot be written (a full disk, a planted link) is recorded as ``output_error`` and the
execution goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from python_mcp_server.core.workspace.dirfd import is_disk_full
from python_mcp_server.core.workspace.outputs import OutputFiles, SpillBudget, SpillFile
from python_mcp_server.errors import ServerError
from python_mcp_server.infra.kernels.base import Message
from python_mcp_server.models.execution import ExecutionErrorInfo, OutputItem

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-Z\\-_]")

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}
TEXT_TYPES = ("text/html", "text/markdown", "text/latex", "application/json")


_BARE_REPR = re.compile(r"^<[\w.]+ object( at 0x[0-9a-fA-F]+)?>$")


def _meaningful_plain(text: Any) -> bool:
    """Whether a text/plain form says something (not an empty ``<X object at 0x..>``)."""
    return isinstance(text, str) and bool(text.strip()) and not _BARE_REPR.match(text.strip())


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor codes."""
    return _ANSI.sub("", text)


@dataclass(frozen=True)
class OutputBounds:
    """How much of an execution's output a result carries."""

    #: Characters of each stream, and of all display text together.
    max_chars: int
    #: Display items (rich outputs) in one result.
    max_displays: int = 100
    #: Raw bytes of images held in memory for one result (for inline copies).
    max_image_bytes: int = 256 * 1024


@dataclass
class SavedImage:
    """An image the execution displayed, saved to the workspace (``path`` None: not saved)."""

    mime_type: str
    data: bytes
    path: str | None


class _End:
    """The last ``size`` characters written, kept in chunks (no copy per write)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._chunks: list[str] = []
        self._length = 0

    def write(self, text: str) -> None:
        self._chunks.append(text)
        self._length += len(text)
        if self._length > 2 * self.size:
            self._chunks = [self.text()]
            self._length = len(self._chunks[0])

    def text(self) -> str:
        return "".join(self._chunks)[-self.size :] if self.size else ""


class _Stream:
    """One output stream: its head and its end in memory, everything (capped) in a spill
    file. A stream past the cap reads as its head, a marker of what was cut, and its last
    quarter-cap of characters (where a log's outcome usually is)."""

    def __init__(self, cap: int, spill: SpillFile) -> None:
        self._cap = cap
        self._head: list[str] = []
        self._head_len = 0
        self._spilling = False
        self.spill = spill
        self.total_chars = 0
        self._tail = ""
        self._end = _End(cap // 4)

    def write(self, text: str) -> None:
        self.total_chars += len(text)
        self._tail = (self._tail + text)[-2000:]
        self._end.write(text)
        if self._spilling:
            self.spill.write(text.encode("utf-8", errors="replace"))
            return
        if self._head_len + len(text) <= self._cap:
            self._head.append(text)
            self._head_len += len(text)
            return
        self._spilling = True
        self.spill.write("".join([*self._head, text]).encode("utf-8", errors="replace"))
        room = self._cap - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += room

    @property
    def truncated(self) -> bool:
        return self._spilling

    def text(self) -> str:
        head = "".join(self._head)
        if not self._spilling:
            return head
        end = self._end.text()
        head = head[: self._cap - len(end)]
        dropped = self.total_chars - len(head) - len(end)
        return f"{head}\n[... {dropped} characters cut ...]\n{end}"

    def tail(self) -> str:
        return self._tail


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
    #: What was cut, dropped or not saved, in words.
    notes: list[str] = field(default_factory=list)
    #: The first failure to save an output file (DISK_FULL for a full disk).
    output_error: ServerError | None = None
    #: Saved images not held in memory (past ``max_image_bytes``): (path, MIME type).
    unattached: list[tuple[str, str]] = field(default_factory=list)

    @property
    def message(self) -> str | None:
        """The notes as the result's message (None when there is nothing to say)."""
        return "; ".join(self.notes) or None


@dataclass
class OutputCollector:
    """Feed it IOPub messages; ask it for the ``CollectedOutput`` when the execution ends."""

    execution_id: str
    files: OutputFiles
    bounds: OutputBounds
    #: The session whose per-session output byte cap applies (None: only the per-call cap).
    owner: object | None = None
    result: str | None = None
    error: ExecutionErrorInfo | None = None
    outputs: list[OutputItem] = field(default_factory=list)
    images: list[SavedImage] = field(default_factory=list)
    activity: int = 0

    def __post_init__(self) -> None:
        self._budget: SpillBudget = self.files.budget(self.owner)
        self._streams = {
            name: _Stream(
                self.bounds.max_chars,
                SpillFile(self.files, f"{self.execution_id}-{name}.txt", self._budget),
            )
            for name in ("stdout", "stderr")
        }
        self._display_chars = 0
        #: Items of each display that has an id, so an update can replace them.
        self._displays: dict[str, list[OutputItem]] = {}
        self._image_bytes = 0
        self._image_count = 0
        self._dropped_displays = 0
        self._dropped_chars = 0
        self._unattached: list[tuple[str, str]] = []
        self._unsaved_images = 0
        self._result_cut = 0
        self._output_error: ServerError | None = None
        self._failed = 0

    def handle(self, message: Message) -> None:
        """Route one IOPub message (already matched to this execution); never raises."""
        self.activity += 1
        try:
            self._handle(message)
        except Exception:  # a malformed message must not end the kernel's reader
            self._failed += 1
            logger.exception("execution %s: an output message was dropped", self.execution_id)

    def _handle(self, message: Message) -> None:
        msg_type = message["header"]["msg_type"]
        content: dict[str, Any] = message["content"]
        if msg_type == "stream":
            stream = self._streams.get(content.get("name", "stdout"), self._streams["stdout"])
            stream.write(str(content.get("text", "")))
        elif msg_type == "execute_result":
            data = content.get("data", {})
            self.result = self._cut_result(data.get("text/plain"))
            self._add_rich(data, include_plain=False)
        elif msg_type in ("display_data", "update_display_data"):
            transient = content.get("transient") or {}
            display_id = transient.get("display_id") if isinstance(transient, dict) else None
            before = len(self.outputs)
            self._add_rich(content.get("data", {}), include_plain=True)
            if isinstance(display_id, str):
                self._place_display(display_id, before, update=msg_type != "display_data")
        elif msg_type == "error":
            self.error = ExecutionErrorInfo(
                ename=str(content.get("ename", "Error")),
                evalue=strip_ansi(str(content.get("evalue", ""))),
                traceback=[strip_ansi(str(line)) for line in content.get("traceback", [])],
            )

    def _cut_result(self, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if len(text) <= self.bounds.max_chars:
            return text
        self._result_cut = len(text) - self.bounds.max_chars
        return text[: self.bounds.max_chars]

    # --- rich outputs --------------------------------------------------------------------
    def _add_rich(self, data: dict[str, Any], *, include_plain: bool) -> None:
        """One form of each output: an image, else plain text, else the richer text
        (HTML, markdown...) only when the plain text is all there is or says nothing."""
        items: list[OutputItem] = []
        shown = False
        for mime, ext in IMAGE_TYPES.items():
            if mime in data:
                shown = True
                item = self._save_image(mime, ext, data[mime])
                if item is not None:
                    items.append(item)
        if shown or _meaningful_plain(data.get("text/plain")):
            if include_plain and not shown:
                items.append(OutputItem(mime_type="text/plain", text=str(data["text/plain"])))
            for item in items:
                self._keep(item)
            return
        for mime in TEXT_TYPES:
            if mime in data:
                value = data[mime]
                text = value if isinstance(value, str) else json.dumps(value)
                items.append(OutputItem(mime_type=mime, text=text))
        if include_plain and not items and "text/plain" in data:
            items.append(OutputItem(mime_type="text/plain", text=str(data["text/plain"])))
        for item in items:
            self._keep(item)

    def _place_display(self, display_id: str, start: int, *, update: bool) -> None:
        """An update of a display shown earlier in this execution replaces it in place (a
        progress bar is one output, not one per update)."""
        added = self.outputs[start:]
        earlier = self._displays.get(display_id)
        if update and earlier is not None:
            del self.outputs[start:]
            at = next((i for i, item in enumerate(self.outputs) if item is earlier[0]), None)
            if at is None:
                self.outputs.extend(added)
            else:
                gone = self.outputs[at : at + len(earlier)]
                self._display_chars -= sum(len(item.text or "") for item in gone)
                self.outputs[at : at + len(earlier)] = added
        if added:
            self._displays[display_id] = added

    def _keep(self, item: OutputItem) -> None:
        """Add a display item within the result's bounds, or count it as dropped."""
        size = len(item.text or "")
        room = self.bounds.max_chars - self._display_chars
        if len(self.outputs) >= self.bounds.max_displays or (item.text is not None and room <= 0):
            self._dropped_displays += 1
            self._dropped_chars += size
            return
        if item.text is not None and size > room:
            self._dropped_chars += size - room
            item.text = item.text[:room]
        self._display_chars += len(item.text or "")
        self.outputs.append(item)

    def _save_image(self, mime: str, ext: str, payload: Any) -> OutputItem | None:
        if mime == "image/svg+xml":
            raw = str(payload).encode("utf-8")
        else:
            try:
                raw = base64.b64decode(str(payload))
            except (binascii.Error, ValueError):
                return None
        self._image_count += 1
        name = f"{self.execution_id}-{self._image_count}.{ext}"
        path: str | None = None
        try:
            path = self.files.save(name, raw, self._budget)
        except ServerError as exc:
            self._unsaved_images += 1
            if exc.code.value != "FILE_TOO_LARGE":
                self._record_failure(exc)
        if self._image_bytes + len(raw) <= self.bounds.max_image_bytes:
            self._image_bytes += len(raw)
            self.images.append(SavedImage(mime_type=mime, data=raw, path=path))
        elif path is not None:
            self._unattached.append((path, mime))
        return OutputItem(mime_type=mime, path=path) if path is not None else None

    def _record_failure(self, error: ServerError) -> None:
        if self._output_error is None or (
            is_disk_full(error) and not is_disk_full(self._output_error)
        ):
            self._output_error = error

    def tail(self) -> str:
        """The last output of both streams, for progress messages."""
        return (self._streams["stdout"].tail() + self._streams["stderr"].tail())[-500:]

    # --- the end -------------------------------------------------------------------------
    def finish(self) -> CollectedOutput:
        paths: dict[str, str | None] = {}
        notes: list[str] = []
        for name, stream in self._streams.items():
            paths[name] = stream.spill.close() if stream.truncated else None
            if stream.spill.error is not None:
                self._record_failure(stream.spill.error)
        out, err = self._streams["stdout"], self._streams["stderr"]
        spilled = [p for p in (paths["stdout"], paths["stderr"]) if p]
        if out.truncated or err.truncated:
            where = f"; the full text is in {', '.join(spilled)}" if spilled else ""
            notes.append(f"output was longer than the limit and was cut{where}")
        notes.extend(note for s in (out, err) if (note := s.spill.note()))
        notes.extend(self._display_notes())
        if self._output_error is not None and not any(
            s.spill.error is self._output_error for s in (out, err)
        ):
            notes.append(f"an output file was not saved: {self._output_error.message}")
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
            notes=notes,
            output_error=self._output_error,
            unattached=self._unattached,
        )

    def _display_notes(self) -> list[str]:
        notes = []
        if self._result_cut:
            notes.append(f"the result's text was cut: {self._result_cut} characters left out")
        if self._dropped_displays or self._dropped_chars:
            notes.append(
                f"{self._dropped_displays} display output(s) and {self._dropped_chars} "
                f"characters of display text were dropped: a result keeps at most "
                f"{self.bounds.max_displays} displays (MCP_MAX_DISPLAY_OUTPUTS) and "
                f"{self.bounds.max_chars} characters of display text (MCP_MAX_OUTPUT_CHARS)"
            )
        if self._unsaved_images:
            reason = self._budget.capped_by or "a write failed"
            notes.append(f"{self._unsaved_images} image(s) were not saved to outputs/: {reason}")
        if self._failed:
            notes.append(f"{self._failed} malformed output message(s) from the kernel dropped")
        return notes
