"""The live view: a session as a notebook in the browser, and as an MCP App."""
