"""Images inline only when small enough: a bounded copy in the result, the file linked.

An image a cell displayed is always saved under ``outputs/`` and linked from the result
(``server/resources.py``). Inline, as image content, a result carries a copy of at most
``per_image`` bytes and ``MAX_SIDE`` pixels on its longer side, and all copies together
at most ``total`` bytes (``MCP_MAX_IMAGE_INLINE_BYTES``, ``MCP_MAX_IMAGE_ATTACH_BYTES``).
A larger PNG or JPEG is downscaled with Pillow (re-encoded as PNG, or JPEG when that is
what fits); without Pillow, or for SVG, an image is inline only when it already fits, and
otherwise linked only.

The image bytes come from kernel code, an attacker: Pillow opens only PNG and JPEG, an
image whose header claims more than ``MAX_PIXELS`` pixels is never decoded, and any
decoding failure means "link only". This runs in a worker thread.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass, field

from mcp_types import ContentBlock, ImageContent

logger = logging.getLogger(__name__)

#: Longest side, in pixels, of an inline copy (vision models scale larger images down).
MAX_SIDE = 1024
#: Smallest side tried before giving up on an inline copy.
MIN_SIDE = 128
#: Images claiming more pixels than this are not decoded (decompression bombs).
MAX_PIXELS = 40_000_000
_DECODABLE = {"image/png": "PNG", "image/jpeg": "JPEG"}


@dataclass(frozen=True)
class InlineLimits:
    """Bytes of one inline copy, and of all inline copies of one result."""

    per_image: int
    total: int


@dataclass(frozen=True)
class InlineCopy:
    """What goes inline for one image."""

    data: bytes
    mime_type: str
    #: Whether this is a downscaled copy (not the original bytes).
    downscaled: bool


def pillow_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def inline_copy(data: bytes, mime_type: str, limit: int) -> InlineCopy | None:
    """The copy of an image to put inline within ``limit`` bytes, or None (link only)."""
    if limit <= 0:
        return None
    fmt = _DECODABLE.get(mime_type)
    if fmt is None or not pillow_available():
        return InlineCopy(data, mime_type, False) if len(data) <= limit else None
    try:
        return _fitted(data, mime_type, fmt, limit)
    except Exception as exc:  # a hostile or broken image: link only
        logger.info("an image was not inlined: %s: %s", type(exc).__name__, exc)
        return None


def _fitted(data: bytes, mime_type: str, fmt: str, limit: int) -> InlineCopy | None:
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=[fmt]) as image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            return None
        if len(data) <= limit and max(width, height) <= MAX_SIDE:
            return InlineCopy(data, mime_type, False)
        if fmt == "JPEG":
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at a reduced size when it can
        alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        source = image.convert("RGBA" if alpha else "RGB")
    side = MAX_SIDE
    while side >= MIN_SIDE:
        copy = source.copy()
        copy.thumbnail((side, side), Image.Resampling.LANCZOS)
        png = _encode(copy, "PNG", optimize=True)
        if len(png) <= limit:
            return InlineCopy(png, "image/png", True)
        flat = copy
        if alpha:
            flat = Image.new("RGB", copy.size, "white")
            flat.paste(copy, mask=copy.getchannel("A"))
        jpeg = _encode(flat, "JPEG", quality=80)
        if len(jpeg) <= limit:
            return InlineCopy(jpeg, "image/jpeg", True)
        side = int(side * 0.7)
    return None


def _encode(image: object, fmt: str, **options: object) -> bytes:
    from PIL import Image

    assert isinstance(image, Image.Image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@dataclass
class InlinePlan:
    """The inline copies of a result's images, and what the result should say."""

    copies: list[InlineCopy] = field(default_factory=list)
    downscaled: int = 0
    linked_only: list[str] = field(default_factory=list)

    def note(self, limits: InlineLimits) -> str | None:
        parts = []
        if self.downscaled:
            parts.append(
                f"{self.downscaled} image(s) attached as downscaled copies (at most "
                f"{MAX_SIDE} px, {limits.per_image} bytes: MCP_MAX_IMAGE_INLINE_BYTES); the "
                "full-size files are linked"
            )
        if self.linked_only:
            shown = ", ".join(self.linked_only[:5])
            more = f" and {len(self.linked_only) - 5} more" if len(self.linked_only) > 5 else ""
            parts.append(
                f"{len(self.linked_only)} image(s) were saved but not attached, past "
                f"{limits.total} bytes of inline images (MCP_MAX_IMAGE_ATTACH_BYTES) or too "
                f"large to inline: {shown}{more}"
            )
        return "; ".join(parts) or None


def plan_inline(
    images: list[tuple[bytes | None, str, str | None]], limits: InlineLimits
) -> InlinePlan:
    """Inline copies for ``(data, mime type, saved path)`` in order, within the limits.

    ``data`` None: the image could not be read (it is linked only, when saved).
    """
    plan = InlinePlan()
    used = 0
    for data, mime_type, path in images:
        room = min(limits.per_image, limits.total - used)
        copy = inline_copy(data, mime_type, room) if data is not None else None
        if copy is None:
            if path is not None:
                plan.linked_only.append(path)
            continue
        used += len(copy.data)
        plan.copies.append(copy)
        plan.downscaled += copy.downscaled
    return plan


def image_blocks(plan: InlinePlan) -> list[ContentBlock]:
    """The image content blocks of a plan's inline copies."""
    return [
        ImageContent(
            type="image",
            data=base64.b64encode(copy.data).decode("ascii"),
            mime_type=copy.mime_type,
        )
        for copy in plan.copies
    ]
