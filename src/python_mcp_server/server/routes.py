"""HTTP file routes: POST /files/upload and GET /files/download/{path} (streamed).

Both use the workspace resolver and the size cap, and answer errors as JSON
``{"error": {"code": ..., "message": ...}}`` with a matching HTTP status. Every handler is
passed through one ``protect`` wrapper when registered, so putting the routes behind the
same auth as /mcp is one argument: ``register_file_routes(mcp, services, protect=...)``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import anyio
from fastmcp import FastMCP
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from python_mcp_server.core.workspace.files import WorkspaceFiles
from python_mcp_server.errors import ErrorCode, FileTooLargeError, InvalidInputError, ServerError
from python_mcp_server.models.files import UploadResult
from python_mcp_server.server.middleware.scopes import FILES_READ, FILES_WRITE, route_scope
from python_mcp_server.server.services import Services
from python_mcp_server.server.upload_parser import UploadParser

Handler = Callable[[Request], Awaitable[Response]]
#: Wraps a handler, e.g. with an auth check; the identity by default.
Protect = Callable[[Handler], Handler]

UPLOAD_PATH = "/files/upload"
DOWNLOAD_PATH = "/files/download/{path:path}"
DEFAULT_UPLOAD_FOLDER = "uploads/"
CHUNK = 256 * 1024
#: Room for multipart boundaries and headers on top of the file size cap.
MULTIPART_SLACK = 64 * 1024

STATUS = {
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.PATH_OUTSIDE_WORKSPACE: 403,
    ErrorCode.FILE_NOT_FOUND: 404,
    ErrorCode.FILE_EXISTS: 409,
    ErrorCode.FILE_TOO_LARGE: 413,
}


def no_protection(handler: Handler) -> Handler:
    return handler


def error_response(exc: ServerError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code.value, "message": exc.message}},
        status_code=STATUS.get(exc.code, 500),
    )


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def upload_handler(files: WorkspaceFiles) -> Handler:
    async def upload(request: Request) -> Response:
        limit = files.workspace.max_file_bytes
        parser: UploadParser | None = None
        try:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > limit + MULTIPART_SLACK:
                raise FileTooLargeError(
                    f"the upload is {length} bytes, more than the {limit}-byte limit "
                    "(MCP_MAX_FILE_BYTES)"
                )
            parser = UploadParser(files, request.headers.get("content-type", ""))
            async for chunk in request.stream():
                await parser.feed(chunk)
            writer = await parser.ensure_writer()
            destination = parser.fields.get("path") or DEFAULT_UPLOAD_FOLDER
            overwrite = _truthy(parser.fields.get("overwrite"), True)

            def commit() -> UploadResult:
                target = files.upload_target(destination, parser.filename if parser else None)
                created = not _exists(files, target.relative)
                size = writer.commit(target, overwrite=overwrite)
                return UploadResult(path=target.relative, size=size, created=created)

            result = await anyio.to_thread.run_sync(commit)
        except ServerError as exc:
            return error_response(exc)
        except ClientDisconnect:
            return error_response(InvalidInputError("the client went away during the upload"))
        finally:
            if parser is not None:
                parser.abort()
        return JSONResponse(result.model_dump(), status_code=201 if result.created else 200)

    return upload


def _exists(files: WorkspaceFiles, relative: str) -> bool:
    try:
        files.workspace.lstat(files.workspace.resolve(relative))
    except ServerError:
        return False
    return True


def download_handler(files: WorkspaceFiles) -> Handler:
    async def download(request: Request) -> Response:
        path = str(request.path_params.get("path", ""))
        try:
            fd, size, relative, mime = await anyio.to_thread.run_sync(files.open_download, path)
        except ServerError as exc:
            return error_response(exc)
        closed = False

        def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                os.close(fd)

        async def body() -> AsyncIterator[bytes]:
            position = 0
            try:
                while position < size:
                    chunk = await anyio.to_thread.run_sync(
                        os.pread, fd, min(CHUNK, size - position), position
                    )
                    if not chunk:
                        break
                    position += len(chunk)
                    yield chunk
            finally:
                close()

        name = relative.rsplit("/", 1)[-1]
        headers = {
            "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
        }
        return StreamingResponse(
            body(), media_type=mime, headers=headers, background=BackgroundTask(close)
        )

    return download


def register_file_routes(
    mcp: FastMCP, services: Services, *, protect: Protect = no_protection
) -> None:
    """Add the file routes to the server's HTTP app, each handler wrapped by ``protect``."""
    files = services.files
    mcp.custom_route(UPLOAD_PATH, methods=["POST"], name="files_upload")(
        protect(route_scope(FILES_WRITE)(upload_handler(files)))
    )
    mcp.custom_route(DOWNLOAD_PATH, methods=["GET"], name="files_download")(
        protect(route_scope(FILES_READ)(download_handler(files)))
    )
