"""FastMCP middleware, one concern per module."""
