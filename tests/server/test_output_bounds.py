"""Execution outputs through the real protocol: links planted by the kernel, byte caps on
spill files, and bounds on the whole result's rich outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.settings import Settings
from tests.helpers import call, run

PER_CALL = 64 * 1024
PER_SESSION = 200 * 1024
#: A tiny PNG (1x1), displayed as an image by IPython.
PNG_CELL = (
    "import base64\nfrom IPython.display import Image, display\n"
    "display(Image(base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==')))\n"
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "max_output_chars": 1000,
        "max_spill_bytes_per_call": PER_CALL,
        "max_spill_bytes_per_session": PER_SESSION,
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def wire_size(result: Any) -> int:
    """Bytes of a tool result as the client receives it (content plus structured)."""
    blocks = [block.model_dump(mode="json") for block in result.content]
    return len(json.dumps({"content": blocks, "structured": result.structured_content}))


async def test_an_outputs_link_planted_by_the_kernel_is_never_written_through(
    client: Client[Any], workspace: Path, outside: Path
) -> None:
    await run(
        client,
        f"import os, shutil\nshutil.rmtree('outputs')\nos.symlink({str(outside)!r}, 'outputs')",
    )
    data = await run(client, "print('k' * 5000)\n" + PNG_CELL)
    assert data["status"] == "ok"
    # Its head and its end (a quarter of MCP_MAX_OUTPUT_CHARS), around what was cut.
    assert data["stdout"] == "k" * 750 + "\n[... 4001 characters cut ...]\n" + "k" * 249 + "\n"
    assert data["stdout_path"] is None
    assert "symbolic link" in data["message"]
    assert names(outside) == []
    assert (workspace / "outputs").is_symlink()


async def test_outputs_swapped_for_a_link_in_a_loop_by_a_kernel_thread(
    client: Client[Any], workspace: Path, outside: Path
) -> None:
    swapper = (
        "import os, threading\n"
        "stop = threading.Event()\n"
        "def swap():\n"
        "    while not stop.is_set():\n"
        "        try:\n"
        "            os.rename('outputs', 'outputs.real')\n"
        f"            os.symlink({str(outside)!r}, 'outputs')\n"
        "            os.unlink('outputs')\n"
        "            os.rename('outputs.real', 'outputs')\n"
        "        except OSError:\n"
        "            pass\n"
        "threading.Thread(target=swap, daemon=True).start()\n"
    )
    assert (await run(client, swapper))["status"] == "ok"
    saved = 0
    for _ in range(25):
        data = await run(client, "print('k' * 3000)\n" + PNG_CELL)
        assert data["status"] == "ok", data
        saved += bool(data["stdout_path"])
    await run(client, "stop.set()")
    assert names(outside) == []
    assert saved > 0


async def test_spill_files_are_capped_per_call_and_per_session(
    client: Client[Any], workspace: Path
) -> None:
    first = await run(client, "print('a' * 1_000_000)")
    assert first["truncated"] is True
    spilled = (workspace / first["stdout_path"]).read_bytes()
    assert spilled.startswith(b"a" * PER_CALL)
    assert len(spilled) < PER_CALL + 17 * 1024
    assert b"bytes dropped" in spilled
    assert "MCP_MAX_SPILL_BYTES_PER_CALL" in first["message"]
    for _ in range(2):
        await run(client, "print('b' * 1_000_000)")
    last = await run(client, "print('c' * 1_000_000)")
    assert "MCP_MAX_SPILL_BYTES_PER_SESSION" in last["message"]
    other = await call(client, "create_session", session_id="other")
    assert other["session"]["session_id"] == "other"
    fresh = await run(client, "print('d' * 5000)", session_id="other")
    assert fresh["message"] is not None
    assert "MCP_MAX_SPILL" not in fresh["message"]
    assert folder_bytes(workspace / "outputs") < PER_SESSION + 4 * 17 * 1024 + 5000


def folder_bytes(folder: Path) -> int:
    return sum(os.path.getsize(folder / name) for name in os.listdir(folder))


@pytest.mark.parametrize(
    "cell",
    [
        "for i in range(20_000):\n    display(i)",
        "from IPython.display import HTML\n"
        "for i in range(2_000):\n    display(HTML('<p>' + 'x' * 10_000 + '</p>'))",
    ],
    ids=["20000-displays", "2000-html"],
)
@pytest.mark.timeout(400)  # 20 MB of IOPub messages: slow on a loaded 2-core machine
async def test_many_rich_outputs_give_a_bounded_result(
    client: Client[Any], settings: Settings, cell: str
) -> None:
    result = await client.call_tool("run_python_code", {"code": cell, "timeout": 120})
    data = result.structured_content
    assert data is not None
    assert data["status"] == "ok"
    assert len(data["outputs"]) <= 100
    assert sum(len(item["text"] or "") for item in data["outputs"]) <= settings.max_output_chars
    assert "dropped" in data["message"]
    assert "MCP_MAX_DISPLAY_OUTPUTS" in data["message"]
    assert wire_size(result) < 256 * 1024


@pytest.mark.parametrize("settings_overrides", [{"max_image_attach_bytes": 100_000}])
async def test_images_past_the_attach_budget_are_saved_not_attached(
    client: Client[Any], workspace: Path
) -> None:
    cell = (
        "import matplotlib.pyplot as plt\nimport numpy as np\n"
        "for i in range(12):\n"
        "    plt.figure(figsize=(2, 2))\n"
        "    plt.imshow(np.random.default_rng(i).random((50, 50)))\n"
        "    plt.show()\n"
    )
    result = await client.call_tool("run_python_code", {"code": cell, "timeout": 120})
    data = result.structured_content
    assert data is not None
    assert data["status"] == "ok", data
    attached = [block for block in result.content if block.type == "image"]
    paths = [item["path"] for item in data["outputs"] if item["mime_type"] == "image/png"]
    assert 0 < len(attached) < len(paths) == 12
    assert all((workspace / path).is_file() for path in paths)
    assert "not attached" in data["message"]
    assert wire_size(result) < 512 * 1024
