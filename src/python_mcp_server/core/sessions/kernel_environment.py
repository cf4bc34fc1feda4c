"""The environment variables a kernel sees: an allow-list, never the server's secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: Variables passed through from the server's environment when present.
ALLOWED_VARIABLES = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_NUMERIC",
    "LC_TIME",
    "TZ",
    "TERM",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "PIP_FIND_LINKS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "UV_CACHE_DIR",
)


def kernel_environment(
    workspace: Path,
    *,
    home: Path | None = None,
    source: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build a kernel's environment from the allow-list plus the project's own variables."""
    origin = os.environ if source is None else source
    env = {name: origin[name] for name in ALLOWED_VARIABLES if name in origin}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = str(home if home is not None else origin.get("HOME", workspace))
    env["OUTPUT_PATH"] = str(workspace / "outputs")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if extra:
        env.update(extra)
    return env
