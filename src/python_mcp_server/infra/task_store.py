"""The Redis that holds MCP task state: its URL shown safely, and whether it answers.

Docket keeps task state in Redis; this module only names the store in messages (with any
password masked) and tells an outage apart from other failures. It holds no policy: the
server decides what an outage means for a call.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.exceptions import RedisError

from python_mcp_server.errors import TaskStoreUnavailableError

#: What replaces a password in a URL shown to anyone.
MASK = "***"
#: Query parameters of a Redis URL that carry a secret.
SECRET_PARAMETERS = frozenset({"password", "sentinel_password"})
#: Longest reason (the driver's error text) an error message quotes.
REASON_CHARS = 200


def masked_url(url: str) -> str:
    """``url`` with its password (in the authority or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.split(':', 1)[0]}://{MASK}"
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, hosts = netloc.rpartition("@")
        user, colon, _password = credentials.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if colon else netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = any(key.lower() in SECRET_PARAMETERS for key, _ in pairs)
    if netloc == parts.netloc and not secret:
        return url
    query = urlencode(
        [(key, MASK if key.lower() in SECRET_PARAMETERS else value) for key, value in pairs],
        safe="*",
    )
    if not netloc and parts.scheme == "unix":
        return f"unix://{parts.path}" + (f"?{query}" if query else "")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is the store being unreachable or too slow."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RedisError | TimeoutError | ConnectionError):
            return True
        inner = getattr(current, "exceptions", None)  # an exception group
        if isinstance(inner, tuple) and inner:
            return all(is_outage(one) for one in inner)
        current = current.__cause__ or current.__context__
    return False


def unavailable(url: str, exc: BaseException | None = None) -> TaskStoreUnavailableError:
    """The error for an unreachable store at ``url`` (password masked)."""
    reason = ""
    if exc is not None and str(exc):
        # The first line, without the client reprs some redis errors append.
        text = str(exc).replace(url, masked_url(url)).splitlines()[0].split(" : <", 1)[0]
        text = text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
        reason = f": {type(exc).__name__}: {text}"
    return TaskStoreUnavailableError(f"the task store at {masked_url(url)} is unreachable{reason}")


async def _answer(url: str) -> None:
    # Docket's own connection, so every URL form the server will use (sentinel too) works.
    from docket import Docket

    async with Docket(name="python-mcp-server-ping", url=url) as docket, docket.redis() as redis:
        await redis.exists(docket.key("ping"))  # any command: it needs a working login


async def ping(url: str, timeout: float) -> None:
    """Raise ``TaskStoreUnavailableError`` unless the Redis at ``url`` answers in time."""
    try:
        await asyncio.wait_for(_answer(url), timeout)
    except ValueError as exc:  # a URL redis-py cannot read
        raise TaskStoreUnavailableError(
            f"the task store URL {masked_url(url)} is not usable: {exc}"
        ) from exc
    except (RedisError, OSError, TimeoutError) as exc:
        raise unavailable(url, exc) from exc
