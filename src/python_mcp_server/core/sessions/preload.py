"""The preload: modules every new kernel has imported before it answers its first call.

``MCP_KERNEL_PRELOAD=auto`` means the data stack (numpy, pandas, matplotlib with the
inline backend) as far as it is installed; a list names modules; ``none`` preloads
nothing. The policy here decides what each launch asks for and what a failure does:

- a kernel that reports preload failures still serves its session (it started anyway);
- the failure is logged once, shown by ``health_check`` and told in the first result of
  each session it affects;
- later kernels of that environment start plain (no preload), until the environment
  changes (an install may have fixed it).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable

from python_mcp_server.infra.kernels.base import LaunchedKernel

logger = logging.getLogger(__name__)

#: What ``auto`` preloads when installed: the ``data`` extra.
DATA_STACK = ("numpy", "pandas", "matplotlib")
#: A name that stands for more than one module.
_EXPANSIONS = {
    "matplotlib": ("matplotlib", "matplotlib.pyplot", "matplotlib_inline.backend_inline"),
}


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def preload_modules(setting: str) -> tuple[str, ...]:
    """The modules a setting names: ``auto``, ``none``/empty, or a comma-separated list."""
    value = setting.strip()
    if value.lower() in ("", "none", "off"):
        return ()
    if value.lower() == "auto":
        names: Iterable[str] = [n for n in DATA_STACK if _installed(n)]
        if "matplotlib" in names and not _installed("matplotlib_inline"):
            names = [n for n in names if n != "matplotlib"]
    else:
        names = [n.strip() for n in value.split(",") if n.strip()]
    found: list[str] = []
    for name in names:
        for module in _EXPANSIONS.get(name, (name,)):
            if module not in found:
                found.append(module)
    return tuple(found)


def describe_failures(failures: dict[str, str]) -> str:
    listed = "; ".join(f"{name}: {error}" for name, error in sorted(failures.items()))
    return f"the kernel preload failed ({listed})"


class PreloadPolicy:
    """What each environment's kernels preload, and what went wrong with it."""

    def __init__(self, modules: tuple[str, ...], mode: str = "start") -> None:
        self.modules = modules
        #: "fork" (kernels forked from a preloaded template), "start" or "none".
        self.mode = mode if modules else "none"
        #: Environment (None = default) -> why its kernels now start plain.
        self.problems: dict[str | None, str] = {}
        #: Environment -> why its kernels import the preload as they start instead of
        #: being forked from a template (``mode`` "fork"; see ``infra/kernels/fork_guard.py``).
        self.unforked: dict[str | None, str] = {}
        #: Why the preload cannot apply at all (a gateway starts kernels its own way).
        self.unsupported: str | None = None
        if modules and mode == "none":
            self.unsupported = "this kernel launcher cannot preload modules; kernels start plain"
            logger.warning("MCP_KERNEL_PRELOAD: %s", self.unsupported)

    def modules_for(self, venv_name: str | None) -> tuple[str, ...]:
        if self.unsupported or venv_name in self.problems:
            return ()
        return self.modules

    def after_start(
        self, kernel: LaunchedKernel, venv_name: str | None, asked: tuple[str, ...]
    ) -> None:
        """Note a started kernel's preload outcome; mark the kernel for its session."""
        if asked and self.mode == "fork":
            reason = kernel.unforked
            if reason is None:
                self.unforked.pop(venv_name, None)
            elif self.unforked.get(venv_name) != reason:
                self.unforked[venv_name] = reason
                logger.info(
                    "kernels of environment %s import the preload as they start: %s",
                    venv_name or "default",
                    reason,
                )
        if asked:
            failures = kernel.preload_failures()
            if not failures:
                return
            problem = describe_failures(failures)
            if venv_name not in self.problems:
                self.problems[venv_name] = problem
                logger.warning(
                    "%s in environment %s; its new kernels start without a preload",
                    problem,
                    venv_name or "default",
                )
            kernel.notice = f"{problem}; the modules that failed are not imported"
        elif self.modules and venv_name in self.problems and not self.unsupported:
            kernel.notice = (
                f"{self.problems[venv_name]}; this session's kernel started without a preload"
            )

    def status(self) -> dict[str, object]:
        """The preload as health shows it."""
        unforked = {name or "default": reason for name, reason in self.unforked.items()}
        return {
            "modules": list(self.modules),
            "mode": self.mode,
            "problem": self.problem,
            "unforked": dict(sorted(unforked.items())),
        }

    def environment_changed(self, venv_name: str | None) -> None:
        """An install may have fixed the preload: try it again."""
        self.problems.pop(venv_name, None)

    @property
    def problem(self) -> str | None:
        """One line for health, when any environment lost its preload."""
        if self.unsupported:
            return self.unsupported
        if not self.problems:
            return None
        return "; ".join(
            f"{name or 'default'}: {text}" for name, text in sorted(self.problems.items(), key=str)
        )
