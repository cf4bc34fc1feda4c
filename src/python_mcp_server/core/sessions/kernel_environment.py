"""The environment variables a kernel sees: an allow-list, never the server's secrets.

Beyond the allow-list a kernel gets its own: ``PATH`` leading to its session's ``bin``
(``pip``), the console scripts it installed and its environment's ``bin`` (``python``),
so shell escapes reach the session's interpreter; ``PYTHONPATH`` holding the pip shim and
the session's package folder; the installer settings the pip shim uses; and no terminal
colours (``NO_COLOR``, ``TERM=dumb``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import python_mcp_server

#: The folder holding the kernel-side ``pip`` package (see ``kernel_shims/pip``).
PIP_SHIM_DIR = Path(python_mcp_server.__file__).parent / "kernel_shims"

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


@dataclass(frozen=True)
class KernelPipConfig:
    """What the kernel-side pip needs: the installer binary and the package sources."""

    uv: str | None = None
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()


def session_package_variables(site: Path, cache: Path, config: KernelPipConfig) -> dict[str, str]:
    """Variables of a kernel with a session package folder (``site``, ``cache``)."""
    env = {
        "PYTHONPATH": os.pathsep.join([str(PIP_SHIM_DIR), str(site)]),
        "PMCP_SESSION_PACKAGES": str(site),
        "UV_CACHE_DIR": str(cache),
        "UV_LINK_MODE": "copy",
        "UV_NO_PROGRESS": "1",
    }
    if config.uv:
        env["PMCP_UV"] = config.uv
    if config.index_url:
        env["PIP_INDEX_URL"] = config.index_url
    if config.extra_index_urls:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(config.extra_index_urls)
    if config.find_links:
        env["PIP_FIND_LINKS"] = " ".join(config.find_links)
    return env


def kernel_environment(
    workspace: Path,
    *,
    home: Path | None = None,
    source: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    path_prefix: Sequence[Path] = (),
) -> dict[str, str]:
    """Build a kernel's environment from the allow-list plus the project's own variables.

    ``path_prefix`` folders come first on ``PATH`` (the session's and environment's bin).
    """
    origin = os.environ if source is None else source
    env = {name: origin[name] for name in ALLOWED_VARIABLES if name in origin}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if path_prefix:
        env["PATH"] = os.pathsep.join([*map(str, path_prefix), env["PATH"]])
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = str(home if home is not None else origin.get("HOME", workspace))
    env["OUTPUT_PATH"] = str(workspace / "outputs")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["NO_COLOR"] = "1"
    env["PIP_NO_COLOR"] = "1"
    env["TERM"] = "dumb"
    if extra:
        env.update(extra)
    return env
