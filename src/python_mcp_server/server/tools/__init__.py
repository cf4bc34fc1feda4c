"""MCP tools, one module per tool group; each is a thin layer over core."""
