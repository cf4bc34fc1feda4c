"""python-mcp-server: a persistent, safe Python for AI agents over MCP."""

__version__ = "0.1.0"
