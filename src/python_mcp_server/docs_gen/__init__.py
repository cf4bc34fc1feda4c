"""Generators of the reference pages in docs/: tools, configuration and error codes.

Each page is rendered from the code itself (the live ``tools/list`` schemas, the Settings
class, the ErrorCode enum), so the docs cannot drift: ``python -m python_mcp_server.docs_gen``
rewrites them and ``--check`` (run by the test suite) fails when a committed page differs.
"""
