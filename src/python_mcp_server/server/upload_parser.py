"""Streaming multipart/form-data for POST /files/upload (python-multipart's low-level parser).

The ``file`` part goes straight into an ``AtomicWriter`` chunk by chunk, so an upload never
sits whole in memory or in /tmp, and the size cap stops it at the limit. Other parts are
small text fields (``path``, ``overwrite``), bounded in size and number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from python_mcp_server.core.workspace.atomic_write import AtomicWriter
from python_mcp_server.core.workspace.files import WorkspaceFiles
from python_mcp_server.errors import InvalidInputError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
MAX_FIELDS = 8
MAX_FIELD_BYTES = 8192


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.filename: str | None = None
        self.data = bytearray()
        self.is_file = False


class UploadParser:
    """Feed it the request body; it writes the file part and collects the fields."""

    def __init__(self, files: WorkspaceFiles, content_type: str) -> None:
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidInputError(
                "send multipart/form-data with the file in a field named 'file'"
            )
        self._files = files
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.writer: AtomicWriter | None = None
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._pending = bytearray()
        self._file_parts = 0
        self._error: InvalidInputError | None = None
        self.complete = False
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_end": self._on_end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    # --- callbacks (synchronous, inside parser.write) ------------------------------------
    def _fail(self, message: str) -> None:
        if self._error is None:
            self._error = InvalidInputError(message)

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part.headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        part = self._part
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", errors="replace")
        if part.name == FILE_FIELD:
            part.is_file = True
            self._file_parts += 1
            if self._file_parts > 1:
                self._fail("send one file per upload")
            raw = options.get(b"filename")
            part.filename = raw.decode("utf-8", errors="replace") if raw is not None else None
            self.filename = part.filename
        elif len(self.fields) >= MAX_FIELDS:
            self._fail(f"too many form fields (at most {MAX_FIELDS})")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part.is_file:
            self._pending += data[start:end]
        elif len(self._part.data) + (end - start) > MAX_FIELD_BYTES:
            self._fail(f"form field {self._part.name!r} is longer than {MAX_FIELD_BYTES} bytes")
        else:
            self._part.data += data[start:end]

    def _on_part_end(self) -> None:
        if not self._part.is_file:
            self.fields[self._part.name] = self._part.data.decode("utf-8", errors="replace")

    def _on_end(self) -> None:
        self.complete = True

    # --- driving -----------------------------------------------------------------------
    async def feed(self, chunk: bytes) -> None:
        """Parse a chunk of the body and write the file bytes it held (in a thread)."""
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise InvalidInputError(f"the multipart body is malformed: {exc}") from None
        if self._error is not None:
            raise self._error
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            if self.writer is None:
                self.writer = await anyio.to_thread.run_sync(self._files.begin_upload)
            await anyio.to_thread.run_sync(self.writer.write, data)

    async def ensure_writer(self) -> AtomicWriter:
        """The writer, also for an empty file part; INVALID_INPUT when there was none."""
        if self._file_parts == 0:
            raise InvalidInputError("the upload has no field named 'file'")
        if not self.complete:
            raise InvalidInputError("the multipart body ended before its closing boundary")
        if self.writer is None:
            self.writer = await anyio.to_thread.run_sync(self._files.begin_upload)
        return self.writer

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
