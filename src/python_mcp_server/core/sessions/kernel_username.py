"""The user a gateway runs a session's kernel as: ``KERNEL_USERNAME`` from its principal.

Jupyter Enterprise Gateway authorizes every kernel start by the ``KERNEL_USERNAME`` in the
request (its ``authorized_users`` / ``unauthorized_users``, ``root`` refused by default),
and may use it for impersonation or in kernel pod names. The natural value is the
principal of the session (``default`` without auth). A principal may hold characters a
user name may not (``alice@example.com``), so it is mapped to a safe form:

- lower case; every run of characters other than ``a-z`` and ``0-9`` becomes one ``-``,
  with none at either end; a name not starting with a letter gets the prefix ``u-``;
- when that changed the principal or made it longer than 32 characters, the name is cut
  to 23 characters and ``-`` plus the first 8 hex digits of the principal's SHA-256 is
  appended, so two principals never share a mapped name by accident
  (``alice@example.com`` -> ``alice-example-com-ff8d9819``). A principal that is already
  a safe name (``alice``, ``team-7``) is sent as it is.

A deployment may fix one name for every kernel instead (``MCP_GATEWAY_KERNEL_USERNAME``).
Privileged names (``root`` and other system accounts) are never sent: such a start fails
with ``KERNEL_USERNAME_REFUSED`` before the gateway is asked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from python_mcp_server.core.sessions.owners import split_key
from python_mcp_server.errors import KernelUsernameRefusedError

#: Longest name sent (the common ``useradd`` limit).
MAX_LENGTH = 32
#: Names that stand for privileged or system accounts: never a kernel's user.
PRIVILEGED_USERNAMES = frozenset(
    {
        "root",
        "toor",
        "admin",
        "administrator",
        "daemon",
        "bin",
        "sys",
        "adm",
        "wheel",
        "sudo",
        "shadow",
        "operator",
        "nobody",
    }
)
#: The form of a name sent as it is (and of a fixed name from the settings).
SAFE_USERNAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_HASH_DIGITS = 8


def safe_username(principal: str) -> str:
    """A principal's name in a form safe as a user name (see the module docstring)."""
    mapped = re.sub(r"[^a-z0-9]+", "-", principal.lower()).strip("-")
    if not mapped[:1].isalpha():
        mapped = f"u-{mapped}".rstrip("-")
    if mapped == principal and len(mapped) <= MAX_LENGTH:
        return mapped
    digest = hashlib.sha256(principal.encode()).hexdigest()[:_HASH_DIGITS]
    head = mapped[: MAX_LENGTH - _HASH_DIGITS - 1].rstrip("-")
    return f"{head}-{digest}"


def check_fixed_username(name: str) -> str:
    """A fixed kernel user name from the settings: safe in form and not privileged."""
    if not SAFE_USERNAME.match(name):
        raise ValueError(
            f"{name!r} is not a safe user name: 1-32 of a-z, 0-9 and '-', starting with a "
            "letter and not ending with '-'"
        )
    if name in PRIVILEGED_USERNAMES:
        raise ValueError(f"{name!r} is a privileged account; kernels never run as it")
    return name


@dataclass(frozen=True)
class KernelUsernames:
    """Gives each session's kernel start its ``KERNEL_USERNAME``."""

    #: One name for every kernel (``MCP_GATEWAY_KERNEL_USERNAME``); None: the principal's.
    fixed: str | None = None

    def for_session(self, session_key: str) -> str:
        """The user name for the kernel of a session (by its manager key).

        Raises ``KernelUsernameRefusedError`` for a privileged name.
        """
        if self.fixed is not None:
            return self.fixed
        principal, _ = split_key(session_key)
        name = safe_username(principal)
        if name in PRIVILEGED_USERNAMES:
            raise KernelUsernameRefusedError(
                f"principal {principal[:80]!r} maps to the privileged user name {name!r}: "
                "kernels never run as a privileged account. Use another principal, or set "
                "MCP_GATEWAY_KERNEL_USERNAME to the unprivileged user the gateway should use"
            )
        return name
