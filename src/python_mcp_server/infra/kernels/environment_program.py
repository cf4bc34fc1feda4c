"""How a kernel forked by a sandboxed template becomes a kernel of its environment.

Shipped as text (standard library only) in a sandboxed template's configuration, like
``isolation_program.py``, and executed once in the template. The template is the
server's own interpreter with the server's own site-packages and never sees an
environment (``template_command.program``); in it:

- ``start(trusted)``: checks that its ``sys.path`` holds only folders of the server's own
  path (a variable that slipped through would end it here, before any import), drops the
  working directory from it and returns the interpreter's own part of it (the standard
  library: what ``site`` added comes after it);
- ``loaded()``: the top-level modules it imported beyond the standard library, which the
  server compares with what an environment provides (``fork_guard.py``);
- ``settle()``: last, before its first fork, invalidates the import caches for all its
  children.

In each child, isolated and under the kernels' filter, before any code of the kernel:
``enter(spec, base)`` makes the process what the environment's interpreter is at start:
``sys.executable`` the environment's, the prefixes reset, a fresh ``sys.path`` (the
kernel's PYTHONPATH, then ``base``) and ``site.main()``, which reads the environment's
``pyvenv.cfg``, puts its site-packages first and runs its ``.pth`` files and
``sitecustomize``, exactly as in a kernel bubblewrap starts. The few module globals that
copied the template's prefix at import (``PREFIXED``) are pointed at the environment's.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

#: Module globals holding paths under ``sys.prefix``, computed when they were imported.
PREFIXED = (
    ("sysconfig", "_PREFIX"),
    ("sysconfig", "_EXEC_PREFIX"),
    ("jupyter_core.paths", "ENV_JUPYTER_PATH"),
    ("jupyter_core.paths", "ENV_CONFIG_PATH"),
    ("IPython.core.application", "ENV_CONFIG_DIRS"),
    ("IPython.core.application", "_env_config_dir"),
    ("IPython.core.shellapp", "ENV_CONFIG_DIRS"),
)


def start(trusted: list[str]) -> list[str]:
    """In the template, first: refuse a path the server does not run; the base path."""
    import site

    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    strange = [entry for entry in sys.path if entry not in trusted]
    if strange:
        raise SystemExit(f"template: sys.path holds what the server does not run: {strange}")
    added = set(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        added.add(site.getusersitepackages())
    for index, entry in enumerate(sys.path):
        if entry in added:
            return sys.path[:index]
    return list(sys.path)


def loaded() -> list[str]:
    """Top-level names of the modules imported here, the standard library left out."""
    standard = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    names = {name.partition(".")[0] for name in list(sys.modules)}
    return sorted(name for name in names if name not in standard and not name.startswith("__"))


def settle() -> None:
    """In the template, after its last import and before its first fork: invalidate the
    import caches (``importlib.invalidate_caches``) for every child at once.

    A child sees other folders than the template did (its environment, its workspace as
    working directory), so no directory listing, no path found missing and no relative
    path entry cached in the template may serve it: every finder lists its folder again
    at its next use. Done in each child, this wrote to every cached finder object, and so
    copied their pages of the template's memory into each kernel (0.7 MB); the template
    imports nothing after it, and a child imports nothing before ``enter`` but standard
    library modules, whose folders are the same in both."""
    importlib.invalidate_caches()


def _repoint(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old) :]
    return value


def enter(spec: dict[str, Any], base: list[str]) -> None:
    """In the child: become the interpreter ``spec["python"]`` as it starts (see above)."""
    import site

    old = sys.prefix
    sys.executable = spec["python"]
    sys.prefix, sys.exec_prefix = sys.base_prefix, sys.base_exec_prefix
    extra = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = [*extra, *base]
    site.PREFIXES = [sys.prefix, sys.exec_prefix]
    site.ENABLE_USER_SITE = None
    site.USER_SITE = None
    site.USER_BASE = None
    for name in ("sitecustomize", "usercustomize"):  # the environment's, if it has them
        sys.modules.pop(name, None)
    # The import caches were invalidated by the template, once for all (``settle``).
    site.main()
    sysconfig = sys.modules.get("sysconfig")
    if sysconfig is not None:  # its variables are computed again, from the new prefixes
        sysconfig._CONFIG_VARS = None  # type: ignore[attr-defined]
        if hasattr(sysconfig, "_CONFIG_VARS_INITIALIZED"):  # Python 3.12 and later
            setattr(sysconfig, "_CONFIG_VARS_INITIALIZED", False)  # noqa: B010
    for module_name, attribute in PREFIXED:
        module = sys.modules.get(module_name)
        if module is None or not hasattr(module, attribute):
            continue
        value = getattr(module, attribute)
        if isinstance(value, list):
            value[:] = [_repoint(item, old, sys.prefix) for item in value]
        else:
            setattr(module, attribute, _repoint(value, old, sys.prefix))
