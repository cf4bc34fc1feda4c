"""The protocol face: FastMCP app, middleware, tools and HTTP routes."""
