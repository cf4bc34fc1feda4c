"""HTTP protections, as ASGI middleware around every route (/mcp, /files/*, /health).

In the order a request meets them:

1. ``OriginGuardMiddleware``: a request with an ``Origin`` header passes only when that
   origin is a loopback one (``http://localhost:5173``) or is listed in
   ``MCP_ALLOWED_ORIGINS``; requests without ``Origin`` (non-browser clients) pass. On a
   loopback-bound server the ``Host`` header must name loopback (or a host of an allowed
   origin): a DNS-rebinding page reaches us with its own host name. Refusals: 403.
   Hosts and origins are parsed exactly (``http_hosts.py``): ``[::1].evil.com`` is no host.
2. ``BearerAuthMiddleware``: with auth configured (a token, a tokens file or JWT keys),
   every path but ``/health`` needs ``Authorization: Bearer <token>`` naming a principal
   (401 otherwise). /health stays open for probes; it
   shows only status, version, uptime and counts.
3. ``BodySizeLimitMiddleware``: bodies over ``MCP_MAX_REQUEST_BYTES`` get 413, whether
   announced by Content-Length or streamed.

Refusals answer ``{"error": {"code": ..., "message": ...}}`` like the file routes.
We use our own guard rather than fastmcp's ``host_origin_protection`` so the rule is the
one documented here for every bind address, and refusals carry stable codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_mcp_server.errors import ErrorCode
from python_mcp_server.server.auth import PrincipalTokenVerifier, auth_configured, build_auth
from python_mcp_server.server.disconnects import DisconnectWatchMiddleware
from python_mcp_server.server.http_hosts import is_loopback_name, parse_host_header, parse_origin
from python_mcp_server.settings import Settings

#: Paths answered without the token.
OPEN_PATHS = frozenset({"/health"})
#: Path prefixes that check their own credentials: the live view takes a signed link
#: (server/view/routes.py), since a browser must never carry the bearer token.
SELF_AUTH_PREFIXES = ("/sessions",)
#: Host header verdicts the origin guard remembers.
HOST_VERDICTS = 256


def _refuse(code: ErrorCode, message: str, status: int, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code.value, "message": message}}, status_code=status, headers=headers
    )


def is_loopback_host(host: str) -> bool:
    """Whether a bare host name or address (no port, no brackets) means this machine."""
    return is_loopback_name(host)


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lowercased, default port dropped; None when not an origin."""
    parsed = parse_origin(origin.strip(), allow_unicode=True)
    return None if parsed is None else str(parsed)


class OriginGuardMiddleware:
    """403 for disallowed Origin headers, and for foreign Host headers on loopback binds."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str], check_host: bool) -> None:
        self.app = app
        origins = [o.strip() for o in allowed_origins if o.strip()]
        self.allow_any = "*" in origins
        parsed = [o for o in (parse_origin(x, allow_unicode=True) for x in origins) if o]
        self.allowed = {str(o) for o in parsed}
        self.allowed_hosts = {o.host.name for o in parsed}
        self.check_host = check_host
        #: Host header value -> verdict: the same few values come on every request, and
        #: parsing one costs more than the rest of the guard (bounded: cleared when full).
        self._host_verdicts: dict[str, bool] = {}

    def origin_allowed(self, origin: str) -> bool:
        parsed = parse_origin(origin)
        if parsed is None:
            return self.allow_any and origin.strip().lower() != "null"
        return self.allow_any or str(parsed) in self.allowed or parsed.host.is_loopback

    def host_allowed(self, values: list[str]) -> bool:
        """The request's Host headers: none (not a browser), or one naming us."""
        if not values:
            return True
        if len(values) > 1:
            return False
        verdict = self._host_verdicts.get(values[0])
        if verdict is None:
            host = parse_host_header(values[0])
            verdict = host is not None and (host.is_loopback or host.name in self.allowed_hosts)
            if len(self._host_verdicts) >= HOST_VERDICTS:
                self._host_verdicts.clear()
            self._host_verdicts[values[0]] = verdict
        return verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origins = headers.getlist("origin")
        if origins and (len(origins) > 1 or not self.origin_allowed(origins[0])):
            response = _refuse(
                ErrorCode.FORBIDDEN_ORIGIN,
                f"origin {origins[0][:100]!r} is not allowed; add it to MCP_ALLOWED_ORIGINS",
                403,
            )
            await response(scope, receive, send)
            return
        if self.check_host and not self.host_allowed(headers.getlist("host")):
            response = _refuse(
                ErrorCode.FORBIDDEN_ORIGIN,
                "this server is bound to loopback and answers only loopback host names",
                403,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BearerAuthMiddleware:
    """401 unless the bearer token names a principal (server/auth.py verifies it).

    FastMCP's own authentication middleware, outermost on the HTTP app, has usually
    verified the token already (``scope["user"]``); otherwise this one does, so the guard
    holds on any app it wraps.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: PrincipalTokenVerifier,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.open_paths = open_paths

    async def authenticate(self, scope: Scope) -> bool:
        if isinstance(scope.get("user"), AuthenticatedUser):
            return True
        header = Headers(scope=scope).get("authorization", "")
        kind, _, value = header.strip().partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            return False
        token = await self.verifier.verify_token(value.strip())
        if token is None:
            return False
        scope["user"] = AuthenticatedUser(token)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in self.open_paths
            or path == "/sessions"
            or path.startswith(tuple(p + "/" for p in SELF_AUTH_PREFIXES))
        ):
            await self.app(scope, receive, send)
            return
        if not await self.authenticate(scope):
            response = _refuse(
                ErrorCode.UNAUTHORIZED,
                "this server requires 'Authorization: Bearer <token>' (MCP_AUTH_TOKEN, a "
                "token of MCP_AUTH_TOKENS_FILE, or a JWT)",
                401,
                **{"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised from receive() once a streamed body passes the limit."""


class BodySizeLimitMiddleware:
    """413 for request bodies over ``max_bytes``, announced or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> JSONResponse:
        return _refuse(
            ErrorCode.REQUEST_TOO_LARGE,
            f"the request body is larger than {self.max_bytes} bytes (MCP_MAX_REQUEST_BYTES)",
            413,
            Connection="close",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_bytes):
            await self._too_large()(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large()(scope, receive, send)


def security_middleware(settings: Settings) -> list[Middleware]:
    """The middleware stack for the HTTP transport, outermost first."""
    stack = [
        Middleware(
            OriginGuardMiddleware,
            allowed_origins=settings.allowed_origins.split(","),
            check_host=is_loopback_host(settings.host),
        )
    ]
    verifier = build_auth(settings)
    if verifier is not None:
        stack.append(Middleware(BearerAuthMiddleware, verifier=verifier))
    stack.append(Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes))
    return stack


def http_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``run_http_async``/``http_app``: our guard, not fastmcp's."""
    watch = Middleware(DisconnectWatchMiddleware)  # a call whose caller left stops
    return {"middleware": [*security_middleware(settings), watch], "host_origin_protection": False}


def _public_without_token(settings: Settings) -> bool:
    return (
        settings.transport == "http"
        and not auth_configured(settings)
        and not is_loopback_host(settings.host)
    )


def insecure_bind_problem(settings: Settings) -> str | None:
    """Why serving HTTP with these settings is refused, or None when it is fine."""
    if not _public_without_token(settings) or settings.allow_insecure:
        return None
    return (
        f"refusing to serve on {settings.host} without an auth token: anyone who can reach "
        "it could run code. Set MCP_AUTH_TOKEN (or --auth-token), bind 127.0.0.1, or pass "
        "--allow-insecure if something in front of the server authenticates"
    )


def insecure_bind_warning(settings: Settings) -> str | None:
    """What to log when --allow-insecure lets a public bind run without a token."""
    if not _public_without_token(settings):
        return None
    return f"serving on {settings.host} WITHOUT an auth token (--allow-insecure)"
