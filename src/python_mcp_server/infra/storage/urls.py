"""Database URLs as logs and errors may show them: never with the password."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
SCHEMES = ("postgresql", "postgres")


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in SCHEMES


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
        netloc = parts.netloc
    except ValueError:
        return "<a database URL that cannot be parsed>"
    if password is None:
        return url if "password=" not in parts.query else urlunsplit(parts._replace(query=MASK))
    userinfo, _, hostport = netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    query = MASK if "password=" in parts.query else parts.query
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostport}", query=query))


def mask_secret(text: str, url: str) -> str:
    """``text`` with the URL's password (plain or %-encoded) masked wherever it appears."""
    password = _password(url)
    if password:
        for form in {password, unquote(password)}:
            if form:
                text = text.replace(form, MASK)
    return text.replace(url, mask_url(url))
