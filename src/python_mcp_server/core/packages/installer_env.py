"""The environment an installer process runs with: scrubbed, with fixed safe variables.

Only the variables named here pass from the server's environment (never its secrets), and
every run gets the variables that keep pip and uv away from user configuration, colour
codes and hard links into the cache.
"""

from __future__ import annotations

import os

#: Variables the installer process may see; the server's secrets never reach it.
INSTALLER_ENV_ALLOWED = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TEMP",
    "TMP",
    "XDG_CACHE_HOME",
    "UV_CACHE_DIR",
    "UV_NATIVE_TLS",
    "UV_HTTP_TIMEOUT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


def installer_env(source: dict[str, str] | None = None) -> dict[str, str]:
    """The scrubbed environment of an installer process."""
    origin = dict(os.environ) if source is None else source
    env = {name: origin[name] for name in INSTALLER_ENV_ALLOWED if name in origin}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(INSTALLER_ENV_FIXED)
    return env


#: Variables every installer run gets, whatever the server's environment holds.
INSTALLER_ENV_FIXED = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PYTHONNOUSERSITE": "1",
    # Copies, never hard links: a file a session's kernel can write must not share its
    # inode with the cache, or with what another environment installs from it.
    "UV_LINK_MODE": "copy",
    "NO_COLOR": "1",
}
