"""Log configuration: stderr only (stdout belongs to the protocol in stdio mode).

Log lines may quote what a kernel controls, so neither format lets it forge a line: JSON
escapes everything, and in text every line after a record's first is indented, with other
control characters escaped (a record always starts at column 0 with its time).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        audit = getattr(record, "audit", None)
        if isinstance(
            audit, dict
        ):  # structured fields of audit lines (core/observability/audit.py)
            payload["audit"] = audit
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``; continuation lines indented, controls escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", super().format(record))
        return text.replace("\n", "\n    ")


class ExpectedToolErrorFilter(logging.Filter):
    """Drops fastmcp's traceback for tool calls refused on purpose (a ``ServerError``).

    Refusals such as PATH_OUTSIDE_WORKSPACE are answers, not faults; the error middleware
    logs the unexpected ones itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from python_mcp_server.errors import ServerError

        if not record.getMessage().startswith("Error calling tool"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, ServerError):
                return False
            error = error.__cause__ or error.__context__
        return True


class StoreOutageFilter(logging.Filter):
    """Docket's lines about an unreachable Redis: one short line per ``every`` seconds.

    While the task store is down, Docket's worker and strike-list monitor retry every
    second, each logging a warning with a full traceback; over a long outage that floods
    the log. This keeps the first such line of every ``every`` seconds per logger, without
    the traceback (the exception's type and text stay on the line).
    """

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if "Redis" not in str(record.msg):
            return True
        last = self._last.get(record.name)
        if last is not None and record.created - last < self.every:
            return False
        self._last[record.name] = record.created
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Send every log line to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter stays at WARNING unless we debug.
    quiet = logging.WARNING if level != "DEBUG" else logging.DEBUG
    logging.getLogger("fastmcp.server.server").addFilter(ExpectedToolErrorFilter())
    for name in ("fastmcp", "mcp", "uvicorn.access", "httpx", "traitlets", "docket"):
        logging.getLogger(name).setLevel(quiet)
    outages = StoreOutageFilter()
    for name in ("docket.worker", "docket.strikelist"):
        logging.getLogger(name).addFilter(outages)
