"""``python -m python_mcp_server``: same as the ``python-mcp-server`` command."""

from python_mcp_server.cli import run

if __name__ == "__main__":
    run()
