"""Bearer authentication that names a principal: static tokens and JWTs.

``PrincipalTokenVerifier`` is a FastMCP token verifier. A bearer token is accepted when it
is one of the static tokens (``MCP_AUTH_TOKEN``, the principal ``default``, and the
``name token [scopes]`` lines of ``MCP_AUTH_TOKENS_FILE``; compared in constant time), or a JWT
that FastMCP's ``JWTVerifier`` accepts (signature by the JWKS at ``MCP_JWT_JWKS_URL`` or the
key in ``MCP_JWT_PUBLIC_KEY``, issuer, audience, expiry). The verified access token carries
the principal in its ``sub`` claim (server/principals.py reads it). A static token holds
every scope unless its tokens-file line lists some (comma separated); a JWT holds the
scopes of its ``scope``/``scp`` claim.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.auth.providers.jwt import JWTVerifier

from python_mcp_server.core.sessions.owners import DEFAULT_OWNER, validate_owner
from python_mcp_server.errors import InvalidInputError
from python_mcp_server.server.principals import SCOPES
from python_mcp_server.settings import Settings

#: Shortest static token accepted from a tokens file.
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class StaticToken:
    """A configured bearer token and the scopes it grants."""

    token: str
    scopes: tuple[str, ...] = SCOPES


def _scopes(field: str, where: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(part for part in field.split(",") if part))
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise InvalidInputError(
            f"{where}: unknown scope(s) {', '.join(unknown) or repr(field)}; "
            f"known: {', '.join(SCOPES)}"
        )
    return scopes


def read_tokens_file(path: Path) -> dict[str, StaticToken]:
    """``principal -> token`` from a file of ``name token [scope,scope...]`` lines
    (``#`` comments); a line without scopes grants every scope."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read MCP_AUTH_TOKENS_FILE {path}: {exc}") from exc
    tokens: dict[str, StaticToken] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise InvalidInputError(f"{path}:{number}: expected 'name token [scopes]'")
        name, token = parts[:2]
        scopes = _scopes(parts[2], f"{path}:{number}") if len(parts) == 3 else SCOPES
        try:
            validate_owner(name)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}:{number}: {exc.message}") from exc
        if len(token) < MIN_TOKEN_LENGTH:
            raise InvalidInputError(
                f"{path}:{number}: the token of {name!r} is shorter than {MIN_TOKEN_LENGTH}"
            )
        if name in tokens:
            raise InvalidInputError(f"{path}:{number}: {name!r} is listed twice")
        if any(entry.token == token for entry in tokens.values()):
            raise InvalidInputError(f"{path}:{number}: two principals share one token")
        tokens[name] = StaticToken(token, scopes)
    return tokens


def static_tokens(settings: Settings) -> dict[str, StaticToken]:
    """Every static token: ``MCP_AUTH_TOKEN`` as ``default``, then the tokens file."""
    tokens = {DEFAULT_OWNER: StaticToken(settings.auth_token)} if settings.auth_token else {}
    if settings.auth_tokens_file is not None:
        for name, token in read_tokens_file(settings.auth_tokens_file).items():
            if name in tokens:
                raise InvalidInputError(
                    f"{name!r} has a token in both MCP_AUTH_TOKEN and MCP_AUTH_TOKENS_FILE"
                )
            tokens[name] = token
    return tokens


def jwt_verifier(settings: Settings) -> JWTVerifier | None:
    """FastMCP's JWT verifier for the MCP_JWT_* settings, or None when none is set."""
    if not (settings.jwt_jwks_url or settings.jwt_public_key):
        return None
    if settings.jwt_jwks_url and settings.jwt_public_key:
        raise InvalidInputError("set MCP_JWT_JWKS_URL or MCP_JWT_PUBLIC_KEY, not both")
    return JWTVerifier(
        public_key=settings.jwt_public_key,
        jwks_uri=settings.jwt_jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        algorithm=settings.jwt_algorithm,
    )


class PrincipalTokenVerifier(TokenVerifier):
    """Static tokens first (constant time, every one compared), then JWTs."""

    def __init__(self, tokens: dict[str, StaticToken], jwt: JWTVerifier | None) -> None:
        super().__init__(required_scopes=[])
        self._tokens = [(name, entry.token.encode(), entry) for name, entry in tokens.items()]
        self._jwt = jwt

    async def verify_token(self, token: str) -> AccessToken | None:
        given = token.encode()
        found: tuple[str, StaticToken] | None = None
        for name, expected, entry in self._tokens:
            if hmac.compare_digest(given, expected):
                found = (name, entry)
        if found is not None:
            name, entry = found
            return AccessToken(
                token=token, client_id=name, scopes=list(entry.scopes), claims={"sub": name}
            )
        if self._jwt is None:
            return None
        verified = await self._jwt.verify_token(token)
        if verified is None or not (verified.claims or {}).get("sub"):
            return None  # a token that names nobody is not a principal
        try:
            validate_owner(str(verified.claims["sub"]))
        except InvalidInputError:
            return None
        return verified


def build_auth(settings: Settings) -> PrincipalTokenVerifier | None:
    """The verifier for these settings; None when no token, file or JWT is configured."""
    tokens = static_tokens(settings)
    jwt = jwt_verifier(settings)
    if not tokens and jwt is None:
        return None
    return PrincipalTokenVerifier(tokens, jwt)


def auth_configured(settings: Settings) -> bool:
    """Whether HTTP callers must authenticate."""
    return bool(
        settings.auth_token
        or settings.auth_tokens_file
        or settings.jwt_jwks_url
        or settings.jwt_public_key
    )
