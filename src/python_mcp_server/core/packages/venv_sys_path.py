"""The ``sys.path`` a kernel of an environment starts with, asked of its interpreter.

The environment's interpreter may have been changed by a kernel, so it runs in the
sandboxed runner, and its answer is data from an untrusted program: only absolute
folders inside the environment's own folder or the server's Python are kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from python_mcp_server.core.packages.installer import Installer
from python_mcp_server.core.packages.installer_env import INSTALLER_ENV_FIXED
from python_mcp_server.errors import PackageInstallationError

PROBE = "import json, sys; print(json.dumps([p for p in sys.path if p]))"


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    normal = Path(os.path.normpath(path))
    return any(normal == f or f in normal.parents for f in folders)


async def probe_sys_path(
    installer: Installer,
    name: str,
    python: str,
    root: Path,
    trusted: Sequence[Path],
    *,
    timeout: float,
) -> list[str]:
    """What ``python`` (environment ``name``, folder ``root``) puts on ``sys.path``, kept
    to folders under ``root`` or ``trusted``."""
    result = await installer.runner.run(
        [python, "-I", "-c", PROBE],
        timeout=timeout,
        readable=[root],
        env=INSTALLER_ENV_FIXED,
    )
    try:
        answer = json.loads(result.stdout) if result.ok else None
    except ValueError:
        answer = None
    if not isinstance(answer, list):
        raise PackageInstallationError(
            f"could not start the Python of environment {name!r}: "
            + installer.hide_paths(result.stderr.strip()[-500:])
        )
    allowed = [root, *trusted]
    return [
        p for p in answer if isinstance(p, str) and os.path.isabs(p) and _inside(Path(p), allowed)
    ]
