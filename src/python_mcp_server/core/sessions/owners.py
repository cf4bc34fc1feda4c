"""Sessions belong to principals: the keying layer between a caller's session id and the
session manager.

A principal (the caller the auth layer identified; ``default`` without auth) names its
sessions freely: Alice's ``analysis`` and Bob's ``analysis`` are two sessions. The server
passes a ``SessionRef`` (owner + the id the caller gave, or None for the caller's active
session) down as a value; the manager keys its sessions by ``session_key``. The default
principal's keys are the plain ids, so single-user servers (stdio, one token) keep the
names they always had, on gateways too.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from python_mcp_server.errors import InvalidInputError

DEFAULT_OWNER = "default"
#: A principal's name: what a tokens file or a JWT ``sub`` may hold.
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+|-]{0,127}$")
#: Separates owner and id in a key; never part of a session id.
KEY_SEPARATOR = "~"


@dataclass(frozen=True)
class SessionRef:
    """A session as one principal names it; ``session_id=None`` is its active session."""

    owner: str = DEFAULT_OWNER
    session_id: str | None = None


#: What session-taking functions accept: a ref, or a plain id (or None) of the default
#: principal.
SessionSpec = SessionRef | str | None


def as_ref(spec: SessionSpec) -> SessionRef:
    """A ``SessionRef`` for a ref or for a plain id of the default principal."""
    if isinstance(spec, SessionRef):
        return spec
    return SessionRef(DEFAULT_OWNER, spec)


def validate_owner(owner: str) -> str:
    if not OWNER_PATTERN.match(owner):
        raise InvalidInputError(
            f"principal name {owner[:80]!r} is not valid: 1-128 letters, digits or ._@:+|-"
        )
    return owner


def session_key(owner: str, session_id: str) -> str:
    """The manager's key of ``owner``'s session ``session_id``."""
    if owner == DEFAULT_OWNER:
        return session_id
    return f"{owner}{KEY_SEPARATOR}{session_id}"


def split_key(key: str) -> tuple[str, str]:
    """``(owner, session_id)`` of a manager key."""
    owner, separator, session_id = key.rpartition(KEY_SEPARATOR)
    return (owner, session_id) if separator else (DEFAULT_OWNER, key)


def new_session_id() -> str:
    """An opaque, unguessable session id for ``create_session`` without one."""
    return f"s-{secrets.token_urlsafe(9).replace('_', 'x').replace('-', 'y')}"
