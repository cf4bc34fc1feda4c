"""Who is calling: the principal behind the current request, and its scopes.

The auth layer (server/auth.py) verifies the bearer token and FastMCP keeps the result as
the request's access token; inside a task the worker restores the token of the call that
started it. The principal is the token's ``sub`` claim (a tokens-file entry's name, or a
JWT's subject). Without a token (stdio, in-memory clients, HTTP without auth) the caller
is the principal ``default`` and holds every scope.

Tools turn the caller's ``session_id`` into a ``SessionRef`` here and pass it down as a
value; nothing rewrites tool arguments.
"""

from __future__ import annotations

from fastmcp.server.auth import AccessToken
from fastmcp.server.dependencies import get_access_token

from python_mcp_server.core.sessions.owners import DEFAULT_OWNER, SessionRef

#: Every scope a caller can hold; ``admin`` implies all the others.
SCOPES = ("code:execute", "files:read", "files:write", "packages:install", "admin")
ADMIN = "admin"


def principal_of(token: AccessToken | None) -> str:
    """The principal a verified token names (``default`` without a token)."""
    if token is None:
        return DEFAULT_OWNER
    subject = (token.claims or {}).get("sub")
    return str(subject) if subject else token.client_id


def current_principal() -> str:
    """The principal of the request (or task) being served."""
    return principal_of(get_access_token())


def current_scopes() -> frozenset[str] | None:
    """The caller's scopes; None when there is no token (every scope)."""
    token = get_access_token()
    return None if token is None else frozenset(token.scopes)


def has_scope(scopes: frozenset[str] | None, needed: str) -> bool:
    return scopes is None or needed in scopes or ADMIN in scopes


def session_ref(session_id: str | None) -> SessionRef:
    """The caller's session ``session_id`` (None: the caller's active session)."""
    return SessionRef(current_principal(), session_id)
