"""The HTTP bearer token a server uses when none is configured: made once, kept private.

At the first HTTP start without ``MCP_AUTH_TOKEN`` a random token (256 bits) is written to
``<state>/auth-token``, mode 0600, created exclusively and never through a link; later
starts read the same file, so clients keep working across restarts.
``python-mcp-server token`` prints it. Kernels never see the state folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

FILE_NAME = "auth-token"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class TokenFileError(Exception):
    """The token file exists but cannot be trusted or read."""


def token_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def read_token(state_dir: Path) -> str | None:
    """The stored token, or None when there is none yet."""
    path = token_path(state_dir)
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise TokenFileError(f"{path} is not a regular file owned by this user")
        if info.st_mode & 0o077:
            raise TokenFileError(f"{path} is readable by others: remove it to make a new one")
        token = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if not token:
        raise TokenFileError(f"{path} is empty: remove it to make a new one")
    return token


def load_or_create_token(state_dir: Path) -> str:
    """The stored token, made now if there is none."""
    existing = read_token(state_dir)
    if existing is not None:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(token_path(state_dir), _CREATE, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return read_token(state_dir) or token
    with contextlib.ExitStack() as stack:
        stack.callback(os.close, fd)
        os.fchmod(fd, 0o600)
        os.write(fd, f"{token}\n".encode())
    return token
