"""Images inline only when small enough, through the real protocol: a large figure comes
back as a downscaled copy of bounded bytes, and the full-size file is always linked."""

from __future__ import annotations

import base64
import io
import zlib
from pathlib import Path
from typing import Any

from fastmcp import Client
from PIL import Image

from python_mcp_server.server.inline_images import MAX_SIDE, inline_copy
from python_mcp_server.settings import Settings

INLINE = Settings().max_image_inline_bytes

#: A 2000x1500 px figure of noise: a PNG of megabytes that compresses badly.
BIG_FIGURE = (
    "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
    "import matplotlib.pyplot as plt\nimport numpy as np\n"
    "fig = plt.figure(figsize=(20, 15), dpi=100)\n"
    "plt.imshow(np.random.default_rng(0).random((400, 400, 3)), interpolation='nearest')\n"
    "plt.show()\n"
)
TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"  # a 1x1 PNG
    "nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


def inline_images(result: Any) -> list[bytes]:
    return [base64.b64decode(block.data) for block in result.content if block.type == "image"]


def image_links(result: Any) -> list[str]:
    return [
        str(block.uri)
        for block in result.content
        if block.type == "resource_link" and (block.mime_type or "").startswith("image/")
    ]


async def read_blob(client: Client[Any], uri: str) -> bytes:
    contents = await client.read_resource(uri)
    return base64.b64decode(contents[0].blob)  # type: ignore[union-attr]


async def test_a_large_figure_is_inline_downscaled_and_linked_full_size(
    client: Client[Any], workspace: Path
) -> None:
    result = await client.call_tool_mcp("run_python_code", {"code": BIG_FIGURE, "timeout": 120})
    data = result.structured_content
    assert data is not None
    assert data["status"] == "ok", data
    (path,) = [o["path"] for o in data["outputs"] if o["mime_type"] == "image/png"]
    original = (workspace / path).read_bytes()
    assert len(original) > 4 * INLINE  # far too large to send whole
    with Image.open(io.BytesIO(original)) as full:
        assert max(full.size) > MAX_SIDE

    (copy,) = inline_images(result)
    assert len(copy) <= INLINE
    with Image.open(io.BytesIO(copy)) as small:
        assert max(small.size) <= MAX_SIDE
        assert small.size[0] > small.size[1]  # the figure's shape is kept
    assert "downscaled" in data["message"]

    assert image_links(result) == [f"workspace://{path}"]
    assert await read_blob(client, f"workspace://{path}") == original


async def test_a_small_image_is_inline_as_it_is(client: Client[Any], workspace: Path) -> None:
    code = (
        "import base64\nfrom IPython.display import Image, display\n"
        f"display(Image(base64.b64decode({TINY_PNG!r})))\n"
    )
    result = await client.call_tool_mcp("run_python_code", {"code": code})
    data = result.structured_content
    assert data is not None
    (path,) = [o["path"] for o in data["outputs"] if o["mime_type"] == "image/png"]
    assert inline_images(result) == [base64.b64decode(TINY_PNG)]
    assert image_links(result) == [f"workspace://{path}"]
    assert "message" not in data


async def test_read_file_attaches_a_downscaled_copy_of_a_large_image(
    client: Client[Any], workspace: Path
) -> None:
    picture = Image.effect_noise((1600, 1200), 80).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    (workspace / "photo.png").write_bytes(buffer.getvalue())
    assert len(buffer.getvalue()) > INLINE
    result = await client.call_tool_mcp("read_file", {"path": "photo.png"})
    (copy,) = inline_images(result)
    assert len(copy) <= INLINE
    with Image.open(io.BytesIO(copy)) as small:
        assert max(small.size) <= MAX_SIDE
    assert "workspace://photo.png" in [
        str(block.uri) for block in result.content if block.type == "resource_link"
    ]


def test_undecodable_or_bomb_images_are_linked_only() -> None:
    svg = b"<svg xmlns='http://www.w3.org/2000/svg'>" + b" " * 5000 + b"</svg>"
    assert inline_copy(svg, "image/svg+xml", 1000) is None  # cannot downscale: too big
    kept = inline_copy(svg, "image/svg+xml", 10_000)
    assert kept is not None
    assert (kept.data, kept.downscaled) == (svg, False)
    assert inline_copy(b"\x89PNG\r\n\x1a\nnot really", "image/png", 10_000) is None
    # A header claiming 8,000 x 8,000 pixels (under Pillow's own bomb limit, over ours)
    # is never decoded.
    bomb = io.BytesIO()
    Image.new("1", (1, 1)).save(bomb, format="PNG")
    raw = bytearray(bomb.getvalue())
    raw[16:24] = (8_000).to_bytes(4, "big") * 2  # IHDR width and height
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")  # a valid chunk again
    with Image.open(io.BytesIO(bytes(raw))) as claimed:
        assert claimed.size == (8_000, 8_000)
    assert inline_copy(bytes(raw), "image/png", 10_000) is None
