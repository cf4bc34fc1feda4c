"""A 10 MB print comes back through the fastmcp client over HTTP, and memory stays bounded."""

from __future__ import annotations

import psutil
from fastmcp import Client

from tests.e2e.conftest import LaunchedServer


async def test_ten_megabytes_over_http_with_bounded_memory(http_server: LaunchedServer) -> None:
    server = psutil.Process(http_server.process.pid)
    async with Client(http_server.mcp_url, auth=http_server.token) as client:
        await client.call_tool("run_python_code", {"code": "1"})
        before = server.memory_info().rss
        for _ in range(3):
            result = await client.call_tool("run_python_code", {"code": "print('y' * 10_000_000)"})
            data = result.structured_content
            assert data is not None
            assert data["status"] == "ok"
            assert data["truncated"] is True
            assert len(data["stdout"]) < 40_000  # MCP_MAX_RESULT_CHARS
            assert (http_server.workspace / data["stdout_path"]).stat().st_size == 10_000_001
        grown_mb = (server.memory_info().rss - before) / 2**20
    # Thirty megabytes of output passed through; the server kept none of it (its large
    # buffers are unmapped when freed: infra/allocator.py; 11 to 39 MB stayed before).
    assert grown_mb < 10, f"server RSS grew by {grown_mb:.1f} MB"
