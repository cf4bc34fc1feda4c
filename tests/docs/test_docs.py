"""The docs tell the truth: generated pages match the code, the nav lists every page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastmcp import Client

from python_mcp_server.cli import build_parser
from python_mcp_server.docs_gen.__main__ import main as docs_gen_main
from python_mcp_server.docs_gen.__main__ import render_all, stale_pages
from python_mcp_server.docs_gen.errors_ref import MEANINGS
from python_mcp_server.docs_gen.settings_ref import flag_names
from python_mcp_server.docs_gen.tools_ref import list_tool_schemas
from python_mcp_server.errors import ErrorCode
from python_mcp_server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_generated_pages_match_the_code() -> None:
    stale = stale_pages(DOCS, render_all())
    assert not stale, (
        f"out of date: {[str(p) for p in stale]}; run `python -m python_mcp_server.docs_gen`"
    )


def test_check_mode_reports_a_stale_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docs_gen_main(["--docs-dir", str(tmp_path)]) == 0
    assert docs_gen_main(["--docs-dir", str(tmp_path), "--check"]) == 0
    page = tmp_path / "errors.md"
    page.write_text(page.read_text().replace("SESSION_LIMIT", "SESSION_LIMITS", 1))
    assert docs_gen_main(["--docs-dir", str(tmp_path), "--check"]) == 1
    assert "errors.md" in capsys.readouterr().err


def test_every_error_code_is_explained() -> None:
    codes = {code.value for code in ErrorCode}
    assert set(MEANINGS) == codes
    for meaning, when in MEANINGS.values():
        assert meaning
        assert when


def test_every_setting_is_described_and_every_flag_is_a_setting() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"
    mapped = set(flag_names().values())
    for action in build_parser()._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        if long and action.dest not in ("help", "version"):
            assert long[0] in mapped, f"flag {long[0]} sets no Settings field of its name"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The reference is generated with the default settings; create_session's description
    # states the idle lifetime, so the server compared with it uses the default too, and
    # the default toolsets.
    return {"session_idle_timeout": Settings().session_idle_timeout, "toolsets": "default"}


async def test_generator_sees_what_tools_list_returns(client: Client[Any]) -> None:
    """The argument schemas the docs are built from are exactly what a client receives;
    result schemas, which tools/list leaves out, come from the tools themselves."""
    wire = {
        tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        for tool in await client.list_tools()
    }
    generated = {tool["name"]: tool for tool in await list_tool_schemas("default")}
    assert set(wire) == set(generated)
    for name, tool in generated.items():
        assert tool["inputSchema"] == wire[name]["inputSchema"], name
        assert "outputSchema" not in wire[name], name
        assert tool.get("outputSchema"), f"{name}: the docs show no result"
        assert tool.get("description") == wire[name].get("description"), name


def test_building_the_reference_leaves_no_state_behind(state_home: Path) -> None:
    """The generator's server has a temporary workspace: its state folder is temporary
    too, not the default one under the home (one folder per build, never removed)."""
    asyncio.run(list_tool_schemas("default"))
    assert not state_home.exists() or not any(state_home.iterdir())


def _nav_pages(items: list[Any]) -> list[str]:
    pages: list[str] = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages.extend(_nav_pages(value))
        else:
            pages.append(str(value))
    return pages


def test_nav_lists_every_page_and_only_real_pages() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav)), "a page is listed twice"
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert set(nav) - on_disk == set(), "the nav lists pages that do not exist"
    assert on_disk - set(nav) == set(), "pages missing from the nav in mkdocs.yml"
