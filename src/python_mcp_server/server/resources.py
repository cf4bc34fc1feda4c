"""MCP resources: workspace files as ``workspace://{path*}``, and resource links to the large
outputs of run_python_code (saved images, the full text of cut output), with the images'
bytes for their inline copies."""

from __future__ import annotations

import logging
from urllib.parse import quote

import anyio
from fastmcp import FastMCP
from fastmcp.exceptions import ResourceError
from fastmcp.resources import ResourceContent, ResourceResult
from mcp_types import ResourceLink

from python_mcp_server.core.sessions.session import ExecutionOutcome
from python_mcp_server.core.workspace.file_types import guess_mime, is_image, looks_textual
from python_mcp_server.core.workspace.resolver import Workspace
from python_mcp_server.errors import ServerError
from python_mcp_server.server.services import Services

URI_TEMPLATE = "workspace://{path*}"
SCHEME = "workspace://"


def workspace_uri(path: str) -> str:
    """The resource URI of a workspace-relative path."""
    return SCHEME + quote(path, safe="/")


def resource_links(outcome: ExecutionOutcome) -> list[ResourceLink]:
    """Links to what an execution saved: every image (full size, whether or not a copy is
    inline) and the full text of cut streams."""
    result = outcome.result
    collected = outcome.collected
    saved: list[tuple[str | None, str, int | None]] = [
        (image.path, image.mime_type, len(image.data)) for image in collected.images
    ]
    saved += [(path, mime, None) for path, mime in collected.unattached]
    links = [
        ResourceLink(
            type="resource_link",
            uri=workspace_uri(path),
            name=path.rsplit("/", 1)[-1],
            mime_type=mime,
            size=size,
            description="An image the execution displayed, saved in the workspace (full size).",
        )
        for path, mime, size in saved
        if path is not None
    ]
    for stream, path in (("stdout", result.stdout_path), ("stderr", result.stderr_path)):
        if path:
            links.append(
                ResourceLink(
                    type="resource_link",
                    uri=workspace_uri(path),
                    name=path.rsplit("/", 1)[-1],
                    mime_type="text/plain",
                    description=f"The full {stream} of the execution (the result holds its "
                    "beginning).",
                )
            )
    return links


def outcome_images(
    outcome: ExecutionOutcome, workspace: Workspace
) -> list[tuple[bytes | None, str, str | None]]:
    """``(data, MIME type, saved path)`` of every image an execution displayed; images not
    held in memory are read back from their file (None when that fails)."""
    images: list[tuple[bytes | None, str, str | None]] = [
        (image.data, image.mime_type, image.path) for image in outcome.collected.images
    ]
    for path, mime in outcome.collected.unattached:
        try:
            data: bytes | None = workspace.read_bytes(workspace.resolve(path))[0]
        except ServerError:
            data = None
        images.append((data, mime, path))
    return images


def register_resources(mcp: FastMCP, services: Services) -> None:
    """The resource template every workspace file is readable through."""
    files = services.files

    @mcp.resource(
        URI_TEMPLATE,
        name="workspace_file",
        description="A file of the workspace, e.g. workspace://outputs/plot.png. Same path "
        "rules and size cap as read_file.",
    )
    async def workspace_file(path: str) -> ResourceResult:
        def read() -> ResourceResult:
            target = files.workspace.resolve(path)
            data, _ = files.workspace.read_bytes(target)
            mime = guess_mime(target.name)
            if not is_image(mime) and (looks_textual(mime) or b"\0" not in data[:8192]):
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    text_mime = mime if mime != "application/octet-stream" else "text/plain"
                    return ResourceResult([ResourceContent(text, mime_type=text_mime)])
            return ResourceResult([ResourceContent(data, mime_type=mime)])

        try:
            return await anyio.to_thread.run_sync(read)
        except ServerError as exc:  # a refusal, with its stable code; not a server fault
            raise ResourceError(str(exc), log_level=logging.INFO) from None
