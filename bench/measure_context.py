"""How much of an agent's context the server costs: tools/list bytes and result sizes.

Prints the size of ``tools/list`` for the default toolsets and for each toolset alone,
then the size of a few typical results (``print('hi')``, a 5-row DataFrame, ``1/0``, a
pandas ``KeyError``, prints past the result budget ``MCP_MAX_RESULT_CHARS``) as the client
receives them: the serialized ``content`` plus
``structuredContent`` of the CallToolResult. Run: ``python bench/measure_context.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastmcp import Client

from python_mcp_server.server.app import build_server
from python_mcp_server.server.toolsets import TOOLSETS
from python_mcp_server.settings import Settings

CELLS: dict[str, str] = {
    "print('hi')": "print('hi')",
    "5-row DataFrame": "import pandas as pd\npd.DataFrame({'a': range(5), 'b': list('vwxyz')})",
    "1/0": "1/0",
    "pandas KeyError": "import pandas as pd\npd.DataFrame({'a': [1]})['missing']",
    "import os": "import os\nos.getcwd()",
    "print 90k chars": "print('y' * 90_000)",
    "print 10 MB": "print('x' * 10_000_000)",
}


def result_size(result: Any) -> int:
    """Characters of a CallToolResult's content plus structuredContent, as sent."""
    wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    sent = {key: wire[key] for key in ("content", "structuredContent") if key in wire}
    return len(json.dumps(sent, separators=(",", ":"), ensure_ascii=False))


async def tools_list_bytes(workspace: Path, toolsets: str) -> tuple[int, int]:
    """(bytes, tool count) of the tools/list answer of a server with these toolsets."""
    server = build_server(Settings(workspace_dir=workspace, toolsets=toolsets))
    async with Client(server) as client:
        listing = await client.list_tools_mcp()
    wire = listing.model_dump(mode="json", by_alias=True, exclude_none=True)
    return len(json.dumps(wire, separators=(",", ":")).encode()), len(listing.tools)


async def result_sizes(workspace: Path) -> dict[str, int]:
    settings = Settings(workspace_dir=workspace, kernel_pool_size=0, session_idle_timeout=0)
    sizes: dict[str, int] = {}
    async with Client(build_server(settings)) as client:
        for label, code in CELLS.items():
            result = await client.call_tool_mcp("run_python_code", {"code": code})
            sizes[label] = result_size(result)
    return sizes


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        workspace.mkdir()
        print("tools/list (bytes, tools)")
        for spec in ["default", "all", *TOOLSETS]:
            size, count = await tools_list_bytes(workspace, spec)
            print(f"  {spec:<14} {size:>7} B  {count:>3} tools")
        print("run_python_code results (characters of content + structuredContent)")
        for label, size in (await result_sizes(workspace)).items():
            print(f"  {label:<16} {size:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
