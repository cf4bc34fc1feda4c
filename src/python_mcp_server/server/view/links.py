"""Signed, short-lived view links, so a browser never carries the bearer token.

A link token names a principal, what it opens (one session, or ``*`` for the session list)
and when it expires, signed with HMAC-SHA256. The key is derived from the server's auth
token when there is one, so replicas sharing a token accept each other's links; otherwise it
is random per server process. Opening a link trades it for a cookie holding a longer-lived
token of the same form, scoped to the view paths.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

#: What a list-page token opens.
ALL_SESSIONS = "*"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class ViewGrant:
    """What a valid token allows: a principal's view of one session, or of all its own."""

    principal: str
    scope: str
    expires: float

    def allows(self, session_id: str) -> bool:
        return self.scope in (ALL_SESSIONS, session_id)


class ViewSigner:
    """Mints and checks view tokens."""

    def __init__(self, secret: str | None) -> None:
        material = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"python-mcp-server view links\0" + material).digest()

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def mint(self, principal: str, scope: str, ttl: float) -> str:
        body = json.dumps(
            {"p": principal, "s": scope, "e": round(time.time() + ttl)}, separators=(",", ":")
        )
        payload = _b64(body.encode())
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str) -> ViewGrant | None:
        """The grant of a well-formed, correctly signed, unexpired token; else None."""
        payload, dot, signature = token.partition(".")
        if not dot or not payload.isascii() or not signature.isascii():
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            body = json.loads(_unb64(payload))
            grant = ViewGrant(str(body["p"]), str(body["s"]), float(body["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return grant if grant.expires > time.time() else None
