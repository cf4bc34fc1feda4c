"""Gives the MCP SDK a direct lookup of each tool's input schema.

On the modern streamable-HTTP revision the SDK checks ``Mcp-Param-*`` headers of every
``tools/call`` against the tool's input schema. Without a lookup it runs a whole
``tools/list`` through the server to find that schema, on every call with arguments,
which cost more than the kernel round trip. The tools never change after build, so their
schemas are read once at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastmcp import FastMCP


async def install_input_schema_lookup(mcp: FastMCP) -> None:
    """Read every visible tool's input schema once and hand the SDK a dict lookup."""
    schemas: dict[str, Mapping[str, Any]] = {
        tool.name: tool.parameters for tool in await mcp.list_tools(run_middleware=False)
    }

    def lookup(name: str) -> Mapping[str, Any] | None:
        return schemas.get(name)

    # fastmcp builds the SDK's low-level server without this hook and exposes no setter;
    # the attribute is the SDK's documented constructor argument.
    mcp._mcp_server.get_tool_input_schema = lookup
