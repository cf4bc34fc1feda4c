"""MCP tool annotations, one constant per kind of effect, so each tool states its own.

``readOnlyHint``: the tool changes nothing. Otherwise ``destructiveHint`` says whether it
may destroy or replace something (files, variables, packages, running code) and
``idempotentHint`` whether calling it again with the same arguments changes nothing more.
"""

from __future__ import annotations

from mcp_types import ToolAnnotations

#: Looks, changes nothing.
READ_ONLY = ToolAnnotations(readOnlyHint=True)
#: Adds something new; a second call fails or adds again.
ADDS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)
#: Sets a state; a second identical call changes nothing more.
SETS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True)
#: Replaces or removes something; a second identical call changes nothing more.
REPLACES = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True)
#: Runs code or otherwise may destroy anything; each call acts anew.
ACTS = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False)
