"""What kind of file something is: entry types, MIME types, text or binary."""

from __future__ import annotations

import codecs
import mimetypes
import stat

from python_mcp_server.models.files import EntryType

#: Share of replaced characters above which a file is treated as binary.
_BINARY_REPLACED_SHARE = 0.1
_TEXT_APPLICATIONS = ("json", "xml", "javascript", "x-sh", "x-python", "yaml", "toml", "sql")


def entry_type(mode: int) -> EntryType:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def guess_mime(name: str) -> str:
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def is_image(mime: str) -> bool:
    return mime.startswith("image/") and mime != "image/svg+xml"


def looks_textual(mime: str) -> bool:
    return mime.startswith("text/") or any(part in mime for part in _TEXT_APPLICATIONS)


def decode_text(data: bytes, more: bool, mime: str) -> tuple[str, int, int] | None:
    """(text, bytes used, replacements), or None when the bytes look binary."""
    if b"\0" in data[:8192] and not looks_textual(mime):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=not more)
    pending = len(decoder.getstate()[0])
    used = len(data) - pending
    replaced = text.count("\ufffd") - data.count("\ufffd".encode())
    if (
        replaced
        and not looks_textual(mime)
        and replaced > _BINARY_REPLACED_SHARE * max(len(text), 1)
    ):
        return None
    return text, used, max(replaced, 0)
