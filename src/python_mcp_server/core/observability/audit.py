"""Audit log: one JSON object per execution and per install on ``python_mcp_server.audit``.

Each record's message is a single line of JSON written by ``json.dumps`` (``ensure_ascii``):
every field is escaped, so nothing a kernel controls (an exception class name holding a
newline and a forged record, say) can end the line or add a key. Records say who ran what,
when and how it ended, never a secret: code is identified by its length and a SHA-256
prefix (never its text), errors by the exception name only (messages may quote data), and
credentials in package specs or URLs are masked. The JSON log format also carries the
fields as an ``audit`` object. Given an ``AuditSink`` (the ``AuditStore`` of
``audit_store.py``), each record is also queued for the server's database, under a key that
makes it land there once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from python_mcp_server.core.execution.service import ExecutionHook, ExecutionRequest
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.errors import ServerError

logger = logging.getLogger("python_mcp_server.audit")

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:[^=&\s]*(?:token|key|secret|password|passwd|auth)[^=&\s]*)=)[^&\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Mask ``user:password@`` in URLs and secret-looking query parameters."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<key>***", text)


def code_fingerprint(code: str) -> str:
    """A short stable identifier of a piece of code."""
    return hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()[:16]


def audit_record(event: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The record written for one event: time, event, then the fields that have a value."""
    record: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "event": event,
    }
    record.update((key, value) for key, value in fields.items() if value is not None)
    return record


def audit_line(record: dict[str, Any]) -> str:
    """One line of JSON: control characters, quotes and non-ASCII all escaped."""
    return json.dumps(record, ensure_ascii=True, separators=(", ", ": "), default=str)


class AuditSink(Protocol):
    """Where records go besides the log (the database); ``key`` is unique per event."""

    def record_later(self, key: str, record: dict[str, Any]) -> None: ...


def _emit(
    event: str, fields: dict[str, Any], sink: AuditSink | None, key: str | None = None
) -> dict[str, Any]:
    record = audit_record(event, fields)
    if logger.isEnabledFor(logging.INFO):  # the line is built only when it is written
        logger.info("%s", audit_line(record), extra={"audit": record})
    if sink is not None:
        sink.record_later(key or f"{event}:{uuid.uuid4().hex}", record)
    return record


def audit_execution(
    *,
    execution_id: str,
    session_id: str,
    status: str,
    duration: float,
    code: str,
    error_name: str | None = None,
    kernel_restarted: bool = False,
    principal: str = "default",
    sink: AuditSink | None = None,
) -> dict[str, Any]:
    """Log one execution (and queue it for ``sink``); return the record."""
    return _emit(
        "execution",
        {
            "execution_id": execution_id,
            "principal": principal,
            "session_id": session_id,
            "status": status,
            "duration": round(duration, 6),
            "code_chars": len(code),
            "code_sha256": code_fingerprint(code),
            "error": error_name,
            "kernel_restarted": kernel_restarted or None,
        },
        sink,
        f"execution:{execution_id}",
    )


def audit_install(
    *,
    packages: Sequence[str],
    venv_name: str | None,
    status: str,
    duration: float,
    installer: str | None = None,
    session_id: str | None = None,
    error_code: str | None = None,
    sink: AuditSink | None = None,
) -> dict[str, Any]:
    """Log one package install (called by the packages service); return the record."""
    return _emit(
        "install",
        {
            "packages": ",".join(redact(spec) for spec in packages),
            "venv_name": venv_name or "default",
            "status": status,
            "duration": round(duration, 6),
            "installer": installer,
            "session_id": session_id,
            "error": error_code,
        },
        sink,
    )


@dataclass
class InstallAudit:
    """What an audited install learns as it goes (the installer that did the work)."""

    installer: str | None = None


@contextlib.contextmanager
def audited_install(
    *, packages: Sequence[str], venv_name: str | None, sink: AuditSink | None
) -> Iterator[InstallAudit]:
    """Time the install in the block and write its one audit record, whatever the outcome.

    A failure is recorded with its error code (or exception name) and passed on; the
    block sets ``installer`` on what it is given when the install succeeds.
    """
    audit = InstallAudit()
    started = time.perf_counter()
    try:
        yield audit
    except BaseException as exc:
        audit_install(
            packages=packages,
            venv_name=venv_name,
            status="error",
            error_code=exc.code.value if isinstance(exc, ServerError) else type(exc).__name__,
            duration=time.perf_counter() - started,
            sink=sink,
        )
        raise
    audit_install(
        packages=packages,
        venv_name=venv_name,
        status="ok",
        duration=time.perf_counter() - started,
        installer=audit.installer,
        sink=sink,
    )


class AuditHook(ExecutionHook):
    """ExecutionHook: one audit line after every execution attempt, refused ones too."""

    records_attempts = True

    def __init__(self, sink: AuditSink | None = None) -> None:
        self._sink = sink

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        result = outcome.result
        audit_execution(
            execution_id=result.execution_id,
            session_id=result.session_id,
            status=result.status,
            duration=result.execution_time,
            code=request.code,
            error_name=result.error.ename if result.error else None,
            kernel_restarted=result.kernel_restarted,
            principal=session.owner,
            sink=self._sink,
        )
