"""``python -m python_mcp_server.docs_gen [--check] [--docs-dir docs]``.

Rewrites the generated reference pages; with ``--check`` writes nothing and exits 1 when a
committed page differs from what the code says (printing which).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: Generated pages, relative to the docs folder.
TOOLS_PAGE = Path("reference/tools.md")
CONFIGURATION_PAGE = Path("configuration.md")
ERRORS_PAGE = Path("errors.md")


def render_all() -> dict[Path, str]:
    """Every generated page's expected text, by path relative to the docs folder."""
    os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")
    from python_mcp_server.docs_gen.errors_ref import render_errors_reference
    from python_mcp_server.docs_gen.settings_ref import render_configuration_reference
    from python_mcp_server.docs_gen.tools_ref import render_tools_reference

    return {
        TOOLS_PAGE: asyncio.run(render_tools_reference()),
        CONFIGURATION_PAGE: render_configuration_reference(),
        ERRORS_PAGE: render_errors_reference(),
    }


def stale_pages(docs_dir: Path, pages: dict[Path, str]) -> list[Path]:
    """Pages whose file is missing or differs from the rendered text."""
    stale = []
    for relative, text in pages.items():
        path = docs_dir / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m python_mcp_server.docs_gen",
        description="Regenerate docs/reference/tools.md, docs/configuration.md, docs/errors.md.",
    )
    parser.add_argument("--docs-dir", default="docs", help="the docs folder (default: docs)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a page is out of date"
    )
    args = parser.parse_args(argv)
    docs_dir = Path(args.docs_dir)
    pages = render_all()
    stale = stale_pages(docs_dir, pages)
    if args.check:
        for relative in stale:
            print(f"out of date: {docs_dir / relative}", file=sys.stderr)
        if stale:
            print("run: python -m python_mcp_server.docs_gen", file=sys.stderr)
        return 1 if stale else 0
    for relative in stale:
        path = docs_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pages[relative], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
