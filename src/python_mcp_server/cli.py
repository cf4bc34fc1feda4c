"""The ``python-mcp-server`` command: parse flags, build settings, serve.

``--help`` and ``--version`` return before anything heavy is imported or started.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from python_mcp_server import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python-mcp-server",
        description="A persistent, safe Python for AI agents over MCP (streamable HTTP or "
        "stdio). Every flag can also be set by an MCP_* environment variable. "
        "`python-mcp-server token` prints the HTTP bearer token.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--host", help="address to bind (MCP_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (MCP_PORT; default 8000)")
    parser.add_argument(
        "--transport", choices=["http", "stdio"], help="transport (MCP_TRANSPORT; default http)"
    )
    parser.add_argument(
        "--workspace-dir", help="workspace folder (MCP_WORKSPACE_DIR; default ./workspace)"
    )
    parser.add_argument("--state-dir", help="private state folder (MCP_STATE_DIR)")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (MCP_LOG_LEVEL; default INFO)",
    )
    parser.add_argument("--log-format", choices=["text", "json"], help="MCP_LOG_FORMAT")
    parser.add_argument("--toolsets", help="tool groups to expose (MCP_TOOLSETS)")
    parser.add_argument(
        "--auth-token",
        help="bearer token required on /mcp and /files/* (MCP_AUTH_TOKEN; the environment "
        "variable keeps it out of the process list)",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        default=None,
        help="serve HTTP without a token (MCP_NO_AUTH); refused unless --host is loopback. "
        "By default a token is made at first start: `python-mcp-server token` prints it",
    )
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        default=None,
        help="allow a non-loopback --host without an auth token (MCP_ALLOW_INSECURE)",
    )
    parser.add_argument(
        "--sandbox",
        choices=["auto", "bwrap", "none"],
        help="kernel sandbox (MCP_SANDBOX; default bwrap: kernels are refused where it "
        "cannot work; none: no sandbox at all)",
    )
    parser.add_argument(
        "--gateway-url",
        help="run kernels on this Jupyter Kernel/Enterprise Gateway (MCP_GATEWAY_URL; its "
        "token: MCP_GATEWAY_TOKEN)",
    )
    return parser


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, as Settings field values."""
    fields = {
        "host": args.host,
        "port": args.port,
        "transport": args.transport,
        "workspace_dir": args.workspace_dir,
        "state_dir": args.state_dir,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "toolsets": args.toolsets,
        "auth_token": args.auth_token,
        "no_auth": args.no_auth,
        "allow_insecure": args.allow_insecure,
        "sandbox": args.sandbox,
        "gateway_url": args.gateway_url,
    }
    return {name: value for name, value in fields.items() if value is not None}


def settings_problem(exc: Any) -> str:
    """A pydantic ValidationError of the settings on one line, without the values given
    (a URL or token there may hold a password)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def build_token_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python-mcp-server token",
        description="Print the bearer token HTTP clients must send (MCP_AUTH_TOKEN when set, "
        "else the one kept in the state folder, made now if there is none yet).",
    )
    parser.add_argument("--workspace-dir", help="workspace folder (MCP_WORKSPACE_DIR)")
    parser.add_argument("--state-dir", help="private state folder (MCP_STATE_DIR)")
    return parser


def print_token(argv: Sequence[str]) -> int:
    """``python-mcp-server token``: print the token on stdout, nothing else."""
    args = build_token_parser().parse_args(argv)
    from pydantic import ValidationError

    from python_mcp_server.server.auth_token import TokenFileError, load_or_create_token
    from python_mcp_server.settings import Settings

    fields = {"workspace_dir": args.workspace_dir, "state_dir": args.state_dir}
    try:
        settings = Settings(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        print(f"python-mcp-server: invalid settings: {settings_problem(exc)}", file=sys.stderr)
        return 2
    if settings.auth_token:
        print(settings.auth_token)
        return 0
    try:
        print(load_or_create_token(settings.state_path))
    except (TokenFileError, OSError) as exc:
        print(f"python-mcp-server: {exc}", file=sys.stderr)
        return 2
    return 0


def with_token(settings: Any) -> tuple[Any, str | None]:
    """Settings with the HTTP token in force, and a problem that stops the start, if any.

    HTTP always has a token: the configured one, else the stored one (made at first start).
    ``--no-auth`` is accepted on a loopback bind only; stdio needs no token.
    """
    from python_mcp_server.server.auth_token import TokenFileError, load_or_create_token
    from python_mcp_server.server.http_security import is_loopback_host

    if settings.transport != "http":
        return settings, None
    log = logging.getLogger("python_mcp_server")
    if settings.no_auth:
        if settings.auth_token or settings.auth_tokens_file or settings.jwt_jwks_url:
            return settings, "--no-auth and an auth token contradict each other: choose one"
        if not is_loopback_host(settings.host):
            return settings, (
                f"refusing --no-auth on {settings.host}: serving without a token is accepted "
                "only on a loopback address (127.0.0.1, ::1, localhost)"
            )
        log.warning(
            "--no-auth: HTTP without a token; every local user and process (and a web page "
            "that gets past the Origin check) can run code through this server"
        )
        return settings, None
    if settings.auth_token or settings.auth_tokens_file or settings.jwt_jwks_url:
        return settings, None  # the operator chose how clients authenticate
    if settings.jwt_public_key:
        return settings, None
    try:
        token = load_or_create_token(settings.state_path)
    except (TokenFileError, OSError) as exc:
        return settings, f"cannot keep the auth token: {exc}"
    log.info(
        "HTTP requires a bearer token; print it with: python-mcp-server token%s",
        ""
        if settings.state_dir is None and settings.workspace_dir == Path("workspace")
        else f" --state-dir {settings.state_path}",
    )
    return settings.model_copy(update={"auth_token": token}), None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        return print_token(argv[1:])
    args = build_parser().parse_args(argv)
    os.environ.setdefault("FASTMCP_LOG_ENABLED", "false")
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    from python_mcp_server.infra import collector
    from python_mcp_server.infra.allocator import return_large_buffers

    return_large_buffers()  # before any large output passes through
    collector.hold()  # until the start-up objects are made permanent (collector.py)

    from pydantic import ValidationError

    from python_mcp_server.logging_setup import configure_logging
    from python_mcp_server.settings import Settings

    try:
        settings = Settings(**settings_overrides(args))
    except ValidationError as exc:
        print(f"python-mcp-server: invalid settings: {settings_problem(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    from python_mcp_server.errors import ServerError
    from python_mcp_server.server.app import build_server
    from python_mcp_server.server.http_security import (
        insecure_bind_problem,
        insecure_bind_warning,
    )

    settings, problem = with_token(settings)
    if problem:
        print(f"python-mcp-server: {problem}", file=sys.stderr)
        return 2
    problem = insecure_bind_problem(settings)
    if problem:
        print(f"python-mcp-server: {problem}", file=sys.stderr)
        return 2
    warning = insecure_bind_warning(settings)
    if warning:
        logging.getLogger("python_mcp_server").warning("%s", warning)
    try:
        server = build_server(settings)
        check_task_store(settings)
    except ServerError as exc:
        print(f"python-mcp-server: {exc}", file=sys.stderr)
        return 2
    collector.settle()  # the imports and the app are built: their objects are permanent
    try:
        asyncio.run(_serve(server, settings))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        failure = startup_failure(exc)
        if failure is None:
            raise
        print(f"python-mcp-server: cannot start: {failure}", file=sys.stderr)
        return 1
    return 0


def startup_failure(exc: BaseException) -> str | None:
    """One line for a start-up failure the user can fix (the database unreachable or
    refusing to create its tables, the task store unreachable), found in ``exc`` or the
    exception groups around it; None for anything else."""
    from python_mcp_server.errors import ErrorCode, StorageError, TaskStoreUnavailableError

    if isinstance(exc, StorageError) and exc.code == ErrorCode.INTERNAL_ERROR:
        return exc.message.replace("\n", " ")
    if isinstance(exc, StorageError | TaskStoreUnavailableError):
        return str(exc).replace("\n", " ")
    for inner in getattr(exc, "exceptions", ()):
        found = startup_failure(inner)
        if found is not None:
            return found
    return None


def check_task_store(settings: Any) -> None:
    """Refuse to start while a shared task store (MCP_REDIS_URL) does not answer."""
    if settings.tasks_url.startswith("memory://"):
        return
    from python_mcp_server.infra.task_store import ping
    from python_mcp_server.server.tasks import STORE_TIMEOUT

    asyncio.run(ping(settings.tasks_url, STORE_TIMEOUT))


async def _serve(server: Any, settings: Any) -> None:
    if settings.transport == "stdio":
        # Make SIGTERM end the server the way Ctrl-C does, so the lifespan shuts kernels down.
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, lambda: task.cancel() if task else None)
        try:
            await server.run_stdio_async(show_banner=False)
        except asyncio.CancelledError:
            pass
        return
    # While uvicorn serves, SIGINT and SIGTERM start its graceful shutdown
    # (server/http_serve.py). Outside it (start-up, and the lifespan's shutdown of the
    # kernels after it) a SIGTERM is ignored rather than cutting that work short.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    from python_mcp_server.server.http_serve import serve_http

    await serve_http(server, settings)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
