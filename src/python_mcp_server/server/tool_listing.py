"""The tool list as an agent reads it: input schemas without noise, no output schemas.

``tools/list`` is read into the context window of every agent that connects, so it
carries what a model needs to call a tool and nothing else:

- input schemas drop pydantic's ``title`` keys and the top-level
  ``additionalProperties: false`` (unknown arguments are refused when called), spell an
  optional parameter as its own type (``{"type": "string"}``) instead of
  ``anyOf [..., null]`` with ``default: null``, and keep every description;
- output schemas are not listed: every tool still returns ``structuredContent`` (compact,
  see ``models/wire.py``) and a text form, and the result models are documented in
  ``docs/reference/tools.md``; a client that validates structured results against a
  listed schema has nothing to validate, which is allowed.

The tools themselves are untouched (calls validate arguments with the full signature);
only the listing is rewritten, by a FastMCP transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastmcp.server.transforms import Transform
from fastmcp.tools.base import Tool


def compact_schema(schema: Any) -> Any:
    """A JSON schema without titles, with ``X | None = None`` spelled as plain ``X``."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: compact_schema(prop) for name, prop in value.items()}
            continue
        out[key] = compact_schema(value)
    variants = out.get("anyOf")
    optional = isinstance(variants, list) and {"type": "null"} in variants
    if optional and "default" in out and out["default"] is None:
        assert isinstance(variants, list)
        rest = [v for v in variants if v != {"type": "null"}]
        del out["default"]
        del out["anyOf"]
        if len(rest) == 1 and isinstance(rest[0], dict):
            out = {**rest[0], **out}
        else:
            out["anyOf"] = rest
    return out


def listed(tool: Tool) -> Tool:
    """The copy of a tool that ``tools/list`` shows."""
    parameters = compact_schema(tool.parameters)
    # Unknown arguments are refused by the call itself (INVALID_INPUT); saying so in every
    # schema costs each tool 28 bytes of every agent's context.
    parameters.pop("additionalProperties", None)
    return tool.model_copy(update={"parameters": parameters, "output_schema": None})


class CompactToolListing(Transform):
    """Rewrites ``tools/list`` entries with ``listed``; lookups for calls are untouched."""

    async def list_tools(self, tools: Sequence[Tool]) -> Sequence[Tool]:
        return [listed(tool) for tool in tools]
