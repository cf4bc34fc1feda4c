"""What a sandboxed fork template is given: variables, folders it does not see, its path.

The template (``sandbox_fork.py``) may create user namespaces, so it must run nothing an
agent or a kernel could have written. It is the server's interpreter; these are the
server-side values that keep everything else out of it:

- ``template_variables``: a kernel's variables less the kernel's own ones and every
  ``PYTHON*`` variable that could lead the interpreter to code (``PYTHONPATH``,
  ``PYTHONHOME``, ``PYTHONSTARTUP``, ``PYTHONUSERBASE``, ``PYTHONPYCACHEPREFIX``, ...);
- ``hidden_from_template``: the launch request's own folders (the workspace, the
  environment, local package folders), hidden where the sandbox's hidden folders (home,
  state, environments, /tmp) do not already cover them;
- ``trusted_path``: what its ``sys.path`` may hold, the server's own
  (``environment_program.start`` checks it before any import).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from python_mcp_server.infra.kernels.base import KernelLaunchRequest
from python_mcp_server.infra.kernels.mounts import resolved, under

#: The only ``PYTHON*`` variables a template gets (none names a folder to run code from).
TEMPLATE_PYTHON_VARIABLES = frozenset(
    {"PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONHASHSEED"}
)


def template_variables(env: Mapping[str, str], own: Sequence[str]) -> dict[str, str]:
    """A kernel's variables ``env`` as its template gets them (``own``: the kernel's own)."""
    return {
        name: value
        for name, value in env.items()
        if name not in own and (not name.startswith("PYTHON") or name in TEMPLATE_PYTHON_VARIABLES)
    }


def hidden_from_template(
    request: KernelLaunchRequest, hidden_paths: Sequence[Path]
) -> tuple[Path, ...]:
    """The request's own folders that the sandbox's hidden folders do not cover."""
    hidden = [resolved(path) for path in hidden_paths]
    found = (request.cwd, *request.writable_paths, *request.readable_paths)
    own = [resolved(path) for path in found]
    return tuple(dict.fromkeys(path for path in own if not under(path, hidden)))


def trusted_path() -> list[str]:
    """The server's own ``sys.path``, less its working directory."""
    here = os.getcwd()
    return [entry for entry in sys.path if entry and entry != here]
