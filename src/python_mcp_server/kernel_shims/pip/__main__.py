"""``python -m pip ...`` in a kernel: translate pip's command line to ``uv pip``.

Supported: ``install`` and ``uninstall`` (the session's package folder), ``list``,
``freeze`` and ``show`` (what the session's interpreter sees). pip options uv does not
know and that change nothing here are dropped; the package index comes from the
server's settings (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``).
Output carries no colour codes.
"""

from __future__ import annotations

import os
import sys

#: pip options without a value that uv rejects and that mean nothing here.
_DROPPED_FLAGS = frozenset(
    {"--user", "--no-warn-script-location", "--no-input", "--disable-pip-version-check",
     "--yes", "-y", "--no-color", "--isolated"}
)  # fmt: skip
#: pip options with a value, dropped with it.
_DROPPED_WITH_VALUE = frozenset({"--progress-bar", "--root-user-action"})
_TARGETED = frozenset({"install", "uninstall"})
_READING = frozenset({"list", "freeze", "show"})


def _translate(args: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _DROPPED_FLAGS:
            continue
        if name in _DROPPED_WITH_VALUE:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def _index_args() -> list[str]:
    args: list[str] = []
    index = os.environ.get("PIP_INDEX_URL")
    if index:
        args += ["--index-url", index]
    for url in os.environ.get("PIP_EXTRA_INDEX_URL", "").split():
        args += ["--extra-index-url", url]
    for link in os.environ.get("PIP_FIND_LINKS", "").split():
        args += ["--find-links", link]
    return args


def command(argv: list[str]) -> list[str] | str:
    """The uv command for pip's ``argv``, or why it cannot run."""
    uv = os.environ.get("PMCP_UV", "")
    target = os.environ.get("PMCP_SESSION_PACKAGES", "")
    if not argv or argv[0] in ("-h", "--help", "help"):
        return "usage: pip install|uninstall|list|freeze|show ... (runs uv for this session)"
    if not uv or not target:
        return "pip is not available in this kernel: the server gave it no installer"
    verb, rest = argv[0], _translate(argv[1:])
    common = ["--python", sys.executable, "--color", "never"]
    if verb in _TARGETED:
        extra = _index_args() if verb == "install" else []
        return [uv, "pip", verb, "--no-config", "--target", target, *common, *extra, *rest]
    if verb in _READING:
        return [uv, "pip", verb, "--no-config", *common, *rest]
    return f"pip {verb} is not supported here; use install, uninstall, list, freeze or show"


def main() -> int:
    argv = command(sys.argv[1:])
    if isinstance(argv, str):
        print(argv, file=sys.stderr)
        return 2
    os.environ.pop("FORCE_COLOR", None)
    os.environ["NO_COLOR"] = "1"
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
