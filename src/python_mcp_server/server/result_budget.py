"""One budget for a whole tool result: ``MCP_MAX_RESULT_CHARS``.

A result is measured as a client receives it: the serialized ``content`` blocks plus
``structuredContent`` (JSON, compact separators, characters). Image blocks are not counted
by their base64 characters: clients turn an image into a number of vision tokens that
depends on its pixels, and inline images are bounded on their own (downscaled copies,
``MCP_MAX_IMAGE_ATTACH_BYTES``, see ``server/inline_images.py``).

A result within the budget is sent untouched. Over it:

1. the whole of its text (the text blocks as they would have been sent) is saved to
   ``outputs/<name>.txt`` (or, when the tool already has the whole in a workspace file,
   that file is used);
2. the longest strings (in the text blocks and anywhere in ``structuredContent``) are cut
   to one common length, keeping each one's head and tail around a marker
   ``[... N characters cut ...]``; if that is not enough, long lists keep their first and
   last items;
3. a last text block says how many characters were dropped and where the whole is, and a
   resource link points to it.

The cut result is at most the budget plus that fixed note and link (``NOTE_ALLOWANCE``).
Nothing here raises: a whole that cannot be saved (a planted link, a full disk) is said in
the note instead of linked.
"""

from __future__ import annotations

import copy
import json
import logging
import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastmcp.tools.base import InputRequiredToolResult, ToolResult
from mcp_types import ContentBlock, ImageContent, ResourceLink, TextContent

from python_mcp_server.core.workspace.outputs import OutputFiles
from python_mcp_server.errors import ServerError

logger = logging.getLogger(__name__)

#: Characters a cut result may carry beyond the budget: the note block and the link.
NOTE_ALLOWANCE = 1000
#: Characters of the budget kept free for the note, the link and JSON overhead.
_RESERVE = 600
#: No string is cut shorter than this; past it, long lists are shortened instead.
_MIN_STRING = 120
_MIN_ITEMS = 2
SETTING = "MCP_MAX_RESULT_CHARS"
#: Results with at most this much text are measured on the event loop (microseconds);
#: larger ones are measured and cut in a worker thread.
MEASURE_INLINE_CHARS = 16_384


def wire_size(content: list[ContentBlock], structured: Any) -> int:
    """Characters of ``content`` (image data not counted) plus ``structuredContent``."""
    blocks = []
    for block in content:
        dumped = block.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(block, ImageContent):
            dumped["data"] = ""
        blocks.append(dumped)
    wire: dict[str, Any] = {"content": blocks}
    if structured is not None:
        wire["structuredContent"] = structured
    return len(json.dumps(wire, separators=(",", ":"), ensure_ascii=False))


#: How the files holding an execution's or script's full streams end (output_collector,
#: scripts): ``<id>-stdout.txt``, ``<id>-script-stderr.txt``...
STREAM_FILE_ENDINGS = ("-stdout.txt", "-stderr.txt")


def text_chars(result: ToolResult) -> int:
    """Characters of a result's text blocks (a cheap first look at its size)."""
    return sum(len(block.text) for block in result.content if isinstance(block, TextContent))


def cut_marker(dropped: int) -> str:
    return f"\n[... {dropped} characters cut ...]\n"


def cut_string(text: str, keep: int) -> str:
    """``text`` as its first and last characters (``keep`` in all) around a marker."""
    if len(text) <= keep:
        return text
    head = keep * 3 // 5
    tail = keep - head
    return text[:head] + cut_marker(len(text) - keep) + (text[-tail:] if tail else "")


def _strings(node: Any, longer_than: int) -> int:
    """How many strings under ``node`` are longer than ``longer_than``."""
    if isinstance(node, str):
        return int(len(node) > longer_than)
    if isinstance(node, dict):
        return sum(_strings(value, longer_than) for value in node.values())
    if isinstance(node, list):
        return sum(_strings(value, longer_than) for value in node)
    return 0


def _map_strings(node: Any, change: Callable[[str], str]) -> Any:
    if isinstance(node, str):
        return change(node)
    if isinstance(node, dict):
        return {key: _map_strings(value, change) for key, value in node.items()}
    if isinstance(node, list):
        return [_map_strings(value, change) for value in node]
    return node


def _map_lists(node: Any, keep: int) -> Any:
    if isinstance(node, dict):
        return {key: _map_lists(value, keep) for key, value in node.items()}
    if isinstance(node, list):
        items = node if len(node) <= keep else node[: keep - keep // 2] + node[-(keep // 2) :]
        return [_map_lists(value, keep) for value in items]
    return node


def _longest(node: Any, key: Callable[[Any], int]) -> int:
    if isinstance(node, dict):
        return max((_longest(value, key) for value in node.values()), default=key(node))
    if isinstance(node, list):
        return max([key(node), *(_longest(value, key) for value in node)])
    return key(node)


@dataclass
class _Parts:
    """The cuttable parts of a result: its text blocks' texts and its structured content."""

    texts: list[str]
    structured: Any

    def as_tree(self) -> Any:
        return {"t": self.texts, "s": self.structured}


@dataclass(frozen=True)
class CutReport:
    """What a cut did: characters dropped and where the whole is (None: not saved)."""

    dropped: int
    whole: str | None
    why_not_saved: str | None = None
    #: Saved stream files the result links already (their whole text is there).
    streams: tuple[str, ...] = ()


class ResultBudget:
    """Fits tool results into ``max_chars`` (see the module docstring)."""

    def __init__(self, max_chars: int, outputs: OutputFiles) -> None:
        self.max_chars = max_chars
        self._outputs = outputs
        #: Results measured within the budget, by identity, while they live: a result one
        #: step measured (the tool) is not measured again by the next (the middleware).
        self._measured: weakref.WeakValueDictionary[int, ToolResult] = weakref.WeakValueDictionary()

    def fits(self, result: ToolResult) -> bool:
        """Whether ``result`` is within the budget as it is."""
        if isinstance(result, InputRequiredToolResult) or self._known_to_fit(result):
            return True
        return self._measure(result) <= self.max_chars

    def fits_inline(self, result: ToolResult) -> bool:
        """Whether ``result`` is small enough to measure on the event loop and, measured,
        fits as it is (False: measure and cut it in a worker thread)."""
        return text_chars(result) <= MEASURE_INLINE_CHARS and self.fits(result)

    def _known_to_fit(self, result: ToolResult) -> bool:
        return self._measured.get(id(result)) is result

    def _measure(self, result: ToolResult) -> int:
        size = wire_size(list(result.content), result.structured_content)
        if size <= self.max_chars:
            self._measured[id(result)] = result
        return size

    def fit(
        self, result: ToolResult, *, name: str = "result", whole: str | None = None
    ) -> ToolResult:
        """``result`` if it fits; else the cut copy with a note and a link to the whole.

        ``name`` names the saved file (``outputs/<name>-<random>.txt``); ``whole`` is a
        workspace path that already holds the whole (nothing is saved then).
        """
        if isinstance(result, InputRequiredToolResult) or self._known_to_fit(result):
            return result  # a question to the client, not a result; or measured already
        content = list(result.content)
        structured = result.structured_content
        size = self._measure(result)
        if size <= self.max_chars:
            return result
        texts = [block.text for block in content if isinstance(block, TextContent)]
        streams = saved_streams(content)
        saved: str | None
        why: str | None = None
        if whole is not None:
            saved = whole
        elif streams:
            # The long parts are streams already saved whole (under the call's spill
            # cap): a second copy would write past that cap and add nothing.
            saved = None
        else:
            saved, why = self._save_whole("\n\n".join(texts), name)
        others: list[ContentBlock] = [b for b in content if not isinstance(b, TextContent)]
        parts = self._cut(_Parts(texts, copy.deepcopy(structured)), others)
        new_content: list[ContentBlock] = [
            TextContent(type="text", text=text) for text in parts.texts
        ]
        new_content.extend(others)
        dropped = size - wire_size(new_content, parts.structured)
        report = CutReport(dropped=dropped, whole=saved, why_not_saved=why, streams=streams)
        new_content.append(TextContent(type="text", text=self.note(report)))
        if saved is not None:
            new_content.append(whole_link(saved))
        return ToolResult(
            content=new_content, structured_content=parts.structured, meta=result.meta
        )

    def note(self, report: CutReport) -> str:
        if report.whole is not None:
            where = f"the whole result is in {report.whole}"
        elif report.streams:
            where = "the full output is in the linked files " + ", ".join(report.streams)
        else:
            where = f"the whole result could not be saved: {report.why_not_saved}"
        return (
            f"[result cut to fit {self.max_chars} characters ({SETTING}): about "
            f"{report.dropped} characters were dropped, from the middle of its longest "
            f"parts; {where}]"
        )

    def _save_whole(self, text: str, name: str) -> tuple[str | None, str | None]:
        filename = f"{name}-{secrets.token_hex(4)}.txt"
        try:
            return self._outputs.save(filename, text.encode(), self._outputs.budget(None)), None
        except ServerError as exc:
            logger.info("the whole result %s was not saved: %s", filename, exc.message)
            return None, exc.message

    def _cut(self, parts: _Parts, others: list[ContentBlock]) -> _Parts:
        target = self.max_chars - _RESERVE

        def size_of(candidate: _Parts) -> int:
            blocks: list[ContentBlock] = [TextContent(type="text", text=t) for t in candidate.texts]
            return wire_size(blocks + others, candidate.structured)

        def strings_cut_to(base: _Parts, keep: int) -> _Parts:
            tree = _map_strings(base.as_tree(), lambda s: cut_string(s, keep))
            return _Parts(tree["t"], tree["s"])

        def lists_cut_to(base: _Parts, keep: int) -> _Parts:
            return _Parts(base.texts, _map_lists(base.structured, keep))

        def largest(
            low: int, high: int, make: Callable[[int], _Parts], fits: Callable[[_Parts], bool]
        ) -> _Parts | None:
            best: _Parts | None = None
            while low <= high:  # the largest value whose candidate fits, by bisection
                middle = (low + high) // 2
                candidate = make(middle)
                if fits(candidate):
                    best, low = candidate, middle + 1
                else:
                    high = middle - 1
            return best

        # No single string may be longer than the whole budget: a cheap first cut.
        if _longest(parts.as_tree(), _str_len) > target:
            parts = strings_cut_to(parts, target)
        if size_of(parts) <= target:
            return parts
        # Many items (history entries, files...): shorten long lists until the structured
        # part alone takes at most half the budget, when that is possible.
        longest_list = _longest(parts.structured, _list_len)
        if longest_list > _MIN_ITEMS:
            base = parts
            shortened = largest(
                _MIN_ITEMS,
                longest_list,
                lambda keep: lists_cut_to(base, keep),
                lambda c: wire_size([], c.structured) <= target // 2,
            )
            if shortened is not None:
                parts = shortened
        base = parts
        fitted = largest(
            _MIN_STRING,
            target,
            lambda keep: strings_cut_to(base, keep),
            lambda c: size_of(c) <= target,
        )
        if fitted is not None:
            return fitted
        fallback = strings_cut_to(lists_cut_to(parts, _MIN_ITEMS), _MIN_STRING)
        if size_of(fallback) <= target:
            return fallback
        return _Parts([cut_string("\n\n".join(parts.texts), target // 2)], None)


def _str_len(node: Any) -> int:
    return len(node) if isinstance(node, str) else 0


def _list_len(node: Any) -> int:
    return len(node) if isinstance(node, list) else 0


def saved_streams(content: list[ContentBlock]) -> tuple[str, ...]:
    """Names of the stream files (a call's full stdout or stderr) the result links."""
    return tuple(
        block.name
        for block in content
        if isinstance(block, ResourceLink) and block.name.endswith(STREAM_FILE_ENDINGS)
    )


def whole_link(path: str) -> ResourceLink:
    """A resource link to the saved whole of a cut result."""
    from python_mcp_server.server.resources import workspace_uri

    return ResourceLink(
        type="resource_link",
        uri=workspace_uri(path),
        name=path.rsplit("/", 1)[-1],
        mime_type="text/plain",
        description="The whole result (this result was cut to fit MCP_MAX_RESULT_CHARS).",
    )
