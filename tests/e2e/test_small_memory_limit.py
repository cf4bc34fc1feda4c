"""A memory limit too small for a kernel says so: on a server that is not root (no memory
cgroup: the limit is the kernel process's address space), a kernel that runs out of
memory while it starts fails ``create_session`` with KERNEL_START_FAILED naming
MCP_MAX_MEMORY_MB, not with the loader's or the interpreter's own words alone."""

from __future__ import annotations

from pathlib import Path

from fastmcp import Client

from tests.nonroot_support import TOKEN, non_root_server
from tests.sandbox_support import require_bwrap


async def test_a_kernel_out_of_memory_at_start_names_the_setting(tmp_path: Path) -> None:
    require_bwrap()
    env = {"MCP_SANDBOX": "bwrap", "MCP_MAX_MEMORY_MB": "256", "MCP_KERNEL_POOL_SIZE": "0"}
    with non_root_server(env, tmp_path) as server:
        async with Client(server.mcp_url, auth=TOKEN, timeout=120) as client:
            result = await client.call_tool(
                "create_session", {"session_id": "small"}, raise_on_error=False
            )
            assert result.is_error
            text = result.content[0].text  # type: ignore[union-attr]
            assert text.startswith(
                "KERNEL_START_FAILED: the kernel ran out of memory while starting"
            ), text
            assert "raise MCP_MAX_MEMORY_MB" in text, text
            health = await client.call_tool("health_check", {})
            assert not health.is_error  # the server itself is unharmed
