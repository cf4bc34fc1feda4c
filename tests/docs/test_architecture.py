"""docs/architecture.md stays true: the modules it names exist, and the layering it
describes (server -> core -> infra, MCP only in server) holds in every import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "python_mcp_server"
PAGE = ROOT / "docs" / "architecture.md"


def _modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_every_module_the_page_names_exists() -> None:
    named = set(re.findall(r"`([\w./]+\.py)`", PAGE.read_text()))
    assert len(named) > 50  # the page names modules: the check below is not vacuous
    by_name: dict[str, int] = {}
    for path in _modules():
        by_name[path.name] = by_name.get(path.name, 0) + 1
    missing = [
        name
        for name in sorted(named)
        if not (ROOT / name).is_file()
        and not (PACKAGE / name).is_file()
        and not any(path.as_posix().endswith("/" + name) for path in _modules())
    ]
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_layers_import_only_downwards() -> None:
    rules = {
        "core": ("python_mcp_server.server", "fastmcp", "mcp"),
        "infra": ("python_mcp_server.server", "python_mcp_server.core", "fastmcp", "mcp"),
        "models": ("python_mcp_server.server", "python_mcp_server.core", "fastmcp"),
    }
    broken = []
    for layer, refused in rules.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            for name in _imports(path):
                if any(name == r or name.startswith(r + ".") for r in refused):
                    broken.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert broken == []
