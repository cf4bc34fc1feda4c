"""docs/errors.md from errors.ErrorCode: every code, what it means, when it happens.

``MEANINGS`` must hold an entry for every code (a test checks it), so a new code cannot
ship undocumented.
"""

from __future__ import annotations

import inspect

from python_mcp_server import errors
from python_mcp_server.errors import ErrorCode, ServerError

#: code -> (what it means, when it happens / what to do).
MEANINGS: dict[str, tuple[str, str]] = {
    "INVALID_INPUT": (
        "An argument is missing, of the wrong type, out of range or not allowed.",
        "Any tool, before anything runs: an empty `code`, a malformed `session_id`, a "
        "package spec that is an option or a URL, an unknown toolset name. Fix the argument; "
        "the message names it.",
    ),
    "SESSION_NOT_FOUND": (
        "No live session has that id.",
        "A call names a session that was never created, was deleted, or ended after "
        "being idle (`MCP_SESSION_IDLE_TIMEOUT`). `list_sessions` shows what exists; "
        "`default` is created on first use.",
    ),
    "SESSION_EXISTS": (
        "A session with that id already exists.",
        "`create_session` with a taken id. Use it as it is, or delete it first.",
    ),
    "SESSION_LIMIT": (
        "The most sessions allowed are open.",
        "`create_session` (or first use of `default`) when `MCP_MAX_SESSIONS` sessions "
        "are alive. Delete one, or raise the limit.",
    ),
    "SESSION_BUSY": (
        "The session is running code and the operation cannot wait for it.",
        "`code_completion`, `inspect_object` or `list_variables` on a session whose running "
        "cell keeps the kernel from answering within their timeout. Try again when the cell "
        "ends, or `interrupt_kernel` first.",
    ),
    "SESSION_CLOSED": (
        "The session was closed (deleted, ended after being idle, or the server is stopping) "
        "while the call waited for it or ran in it.",
        "A `run_python_code` queued behind other calls fails with this code and its code did "
        'not run; a running one returns `status: "error"` with `error.code` '
        "`SESSION_CLOSED` and the output it printed. Create the session again to go on.",
    ),
    "KERNEL_START_FAILED": (
        "A kernel process could not be started or did not answer in time.",
        "Creating a session or replacing a dead kernel, when the interpreter is missing "
        "ipykernel, the environment is broken, or the start exceeds "
        "`MCP_KERNEL_START_TIMEOUT`. A kernel still silent after half that timeout is "
        "ended and started once more within the same budget. The message gives the reason "
        "(no answer at all, or an answer but no output channel), with the kernel's last "
        "output lines; a kernel that ran out of memory while starting (a memory limit too "
        "small for it: on a server that is not root, the limit is its address space) "
        "says so and names `MCP_MAX_MEMORY_MB`. Such a kernel's last line gives the peak "
        "of its address space and its limit (`the kernel ended with its address space at a "
        "peak of 192 MiB of its 192 MiB limit`): whatever allocation happened to fail (a "
        "library that could not be mapped, a folder that could not be listed, a C extension "
        "that failed without an exception), a start whose peak came within 64 MiB of its "
        "limit is called out of memory.",
    ),
    "SANDBOX_UNAVAILABLE": (
        "Kernels are refused: the bubblewrap sandbox does not work on this machine.",
        "Creating a session (or any call that needs a kernel) when no `bwrap` could run a "
        "sandbox at start: none installed, a broken `MCP_BWRAP_PATH`, or user namespaces "
        "disabled by the host. The message says why and how to fix it (install bubblewrap, "
        "enable unprivileged user namespaces, or run the server as root); an operator who "
        "accepts unsandboxed kernels starts the server with `--sandbox none`.",
    ),
    "KERNEL_DIED": (
        "The kernel process ended while it was needed.",
        "In an execution result's `error.code` when user code kills the kernel (os._exit, "
        "a segfault, a signal from outside); the session then gets a fresh kernel and its "
        "variables are lost. As a tool error when a control call finds the kernel gone.",
    ),
    "KERNEL_UNRESPONSIVE": (
        "The kernel process is alive but does not answer.",
        "Requests to the kernel (health probes, introspection) that get no reply before "
        "their deadline while it is not running code. `restart_kernel` replaces it.",
    ),
    "KERNEL_REPLY_LOST": (
        "The kernel handled a request but dropped its reply, twice: an interrupt reached it.",
        "`code_completion` or `inspect_object` when an interrupt (one meant for a cell that "
        "had just ended, or another client's) reaches the kernel while it answers: the kernel "
        "then drops the reply. Such a request is sent once more by itself; this code means "
        "the second reply was lost too. The kernel and its variables are fine: call again.",
    ),
    "EXECUTION_TIMEOUT": (
        "Code ran longer than its timeout and was interrupted.",
        "In an execution result: status `timeout`, `error.code` EXECUTION_TIMEOUT. The "
        "session keeps its variables unless the kernel ignored the interrupt and had to be "
        "restarted (the result says so). Raise `timeout` or `MCP_EXECUTION_TIMEOUT`.",
    ),
    "MEMORY_LIMIT_EXCEEDED": (
        "Code tried to use more memory than the kernel may (`MCP_MAX_MEMORY_MB`).",
        "In an execution result's `error.code`; the session stays usable (its kernel is "
        "restarted if it had to end).",
    ),
    "PYTHON_ERROR": (
        "User code raised an exception.",
        "Only in compat results (`execute_python`'s `error.code`, `execute_python_code`'s "
        "`error_code`): native tools report a Python exception as status `error` with "
        "`ename`, `evalue` and `traceback`, not as a code.",
    ),
    "PATH_OUTSIDE_WORKSPACE": (
        "A path leads outside the workspace, or into its private state folder.",
        "File tools and routes given `..` escapes, absolute paths elsewhere, symlinks or "
        "hardlinks that lead out, device files or FIFOs. Nothing is read or written.",
    ),
    "FILE_NOT_FOUND": (
        "No file or folder at that workspace path.",
        "Reading, deleting or running a path that does not exist.",
    ),
    "FILE_EXISTS": (
        "A file is already at that path.",
        "`write_file` or an upload with `overwrite=false` over an existing file.",
    ),
    "FILE_TOO_LARGE": (
        "A file or upload is larger than `MCP_MAX_FILE_BYTES`.",
        "Reads, writes and uploads over the cap; nothing partial is kept.",
    ),
    "PACKAGE_INSTALLATION_ERROR": (
        "The installer could not install (or uninstall) a package.",
        "A package that does not exist, a version that cannot be resolved, no network, "
        "or `MCP_INSTALL_TIMEOUT` reached. The message names the package and the "
        "installer's reason.",
    ),
    "VENV_NOT_FOUND": (
        "No environment has that name.",
        "Tools and sessions naming an environment that was never created or was deleted. "
        "`list_venvs` shows what exists.",
    ),
    "VENV_EXISTS": (
        "An environment with that name already exists.",
        "`create_venv` with a taken name.",
    ),
    "VENV_IN_USE": (
        "A session runs in that environment.",
        "`delete_venv` while a session uses it. Delete those sessions first.",
    ),
    "CONFIRMATION_REQUIRED": (
        "The operation is destructive and needs `confirm=true`.",
        "`delete_venv` on the default environment without `confirm`.",
    ),
    "UNSAFE_CODE": (
        "The safety check blocked the code.",
        "Running code with `MCP_SAFETY_MODE=block` when the check finds a dangerous call "
        "and `allow_unsafe` is not given (or `MCP_ALLOW_UNSAFE` does not permit it); with "
        "`MCP_SAFETY_MODE=ask` when the user declines, or when the client cannot ask and "
        "`MCP_SAFETY_ASK_FALLBACK=block`. The check is advisory: see [Security](security.md).",
    ),
    "UNAUTHORIZED": (
        "The request lacks the bearer token the server requires.",
        "HTTP requests to `/mcp` and the file routes without `Authorization: Bearer "
        "<token>` naming a principal: `MCP_AUTH_TOKEN`, a token of `MCP_AUTH_TOKENS_FILE`, "
        "or a JWT the server accepts (HTTP 401).",
    ),
    "INSUFFICIENT_SCOPE": (
        "The caller's token does not grant the scope this tool or route needs.",
        "A JWT whose `scope` claim lacks `code:execute`, `files:read`, `files:write` or "
        "`packages:install` (or `admin`) calling a tool that needs it; HTTP 403 on the file "
        "routes. See [principals and scopes](security.md#principals-and-scopes).",
    ),
    "FORBIDDEN_ORIGIN": (
        "The HTTP request came from a browser origin (or a Host name) the server does not allow.",
        "Any route, HTTP 403: an `Origin` header that is neither a loopback origin nor in "
        "`MCP_ALLOWED_ORIGINS`, or, on a loopback-bound server, a `Host` header that does not "
        "name loopback (a DNS-rebinding page). Requests without `Origin` pass.",
    ),
    "REQUEST_TOO_LARGE": (
        "The HTTP request body is larger than `MCP_MAX_REQUEST_BYTES`.",
        "Any route, HTTP 413, whether the size was announced by Content-Length or streamed.",
    ),
    "GATEWAY_ERROR": (
        "The Jupyter gateway refused a request or could not be reached.",
        "With `MCP_GATEWAY_URL` set: starting, interrupting, restarting or deleting a "
        "kernel through the gateway failed. The message carries the gateway's answer.",
    ),
    "GATEWAY_FORBIDDEN": (
        "The gateway refused to start a session's kernel (HTTP 403).",
        "With `MCP_GATEWAY_URL` set, creating a session (or the first call of one). "
        "Jupyter Enterprise Gateway answers 403 when the kernel's user (`KERNEL_USERNAME`, "
        "the caller's principal or `MCP_GATEWAY_KERNEL_USERNAME`) is in its "
        "`unauthorized_users` or missing from a non-empty `authorized_users`, or when the "
        "kernelspec is not allowed. The message names the user and the gateway's reason; "
        "nothing was started. See [Enterprise Gateway](deployment.md#enterprise-gateway).",
    ),
    "KERNEL_USERNAME_REFUSED": (
        "A session's kernel would run as a privileged user; the gateway was not asked.",
        "With `MCP_GATEWAY_URL` set, a principal whose name maps to `root` or another "
        "system account (see [Enterprise Gateway](deployment.md#enterprise-gateway)) "
        "creating a session. Use another principal, or set "
        "`MCP_GATEWAY_KERNEL_USERNAME` to the unprivileged user every kernel should run as.",
    ),
    "NOTEBOOK_INVALID": (
        "A notebook file is not JSON, not nbformat 4, or does not pass the nbformat schema.",
        "`import_notebook` on such a file. Nothing runs and nothing is written; open and "
        "save the notebook in a current Jupyter to convert an older format.",
    ),
    "DISK_FULL": (
        "The file system holding the workspace or the server's state has no room left.",
        "`create_session` and the file tools refuse with it; an execution whose output "
        'could not be saved returns `status: "error"` with `error.code: DISK_FULL` (the '
        "code ran; the session lives on), and so does user code that failed with "
        "`OSError: [Errno 28] No space left on device`. `health_check` reports "
        "`disk.full`. Free space (delete files in `outputs/`) and call again.",
    ),
    "NETWORK_POLICY_REFUSED": (
        "A session asked for more network access than the server grants.",
        "`create_session` with a `network` wider than `MCP_KERNEL_NETWORK` (`deny` < "
        "`allowlist` < `allow`), or an `allowlist` naming a domain the server's allowlist "
        "does not cover. Ask for the server's policy or a narrower one; see "
        "[Security](security.md#kernel-network).",
    ),
    "DATABASE_UNAVAILABLE": (
        "The shared database (`MCP_DATABASE_URL`) cannot be reached right now.",
        "`get_execution_history` and `clear_execution_history` while PostgreSQL is down, "
        "restarting or out of connections; with kernels on a gateway also `create_session`, "
        "`delete_session`, `list_sessions` and a first call on a new `default` session "
        "(the session registry decides which replica starts a kernel: nothing is started or "
        "ended without it). Executions still run; their history and audit "
        "records wait in a bounded queue and are written, once each, when the database is "
        "back. Retry later; `health_check` lists the problem meanwhile. See "
        "[Deployment](deployment.md#shared-database).",
    ),
    "TASK_STORE_UNAVAILABLE": (
        "The Redis holding task state (`MCP_REDIS_URL`) does not answer.",
        "At start, the server refuses to run and says so on one line (the URL's password "
        "masked). While it runs: a call asked to run as a task, `tasks/get`, `tasks/cancel` "
        "and `tasks/update` fail with this code (a JSON-RPC error whose `data.code` is "
        "`TASK_STORE_UNAVAILABLE`) within 10 s instead of hanging; synchronous calls go on "
        "working. Task calls work again as soon as Redis answers; tasks whose state Redis "
        "lost meanwhile (a restart without persistence) are reported as not found. See "
        "[Long calls as tasks](tasks.md#tasks-across-replicas-redis).",
    ),
    "TASK_LOST": (
        "The replica running a task stopped (killed, crashed or shut down) before the task "
        "ended; the task was not run again.",
        "With a shared task store (`MCP_REDIS_URL`): the task reports `failed` with this "
        "code through the other replicas, `MCP_TASK_LOST_AFTER` seconds (default 60) after "
        "the replica stopped. Its code may have run in part or whole (on a gateway the "
        "kernel may even finish the cell): look at the session's state before running it "
        "again. See [Long calls as tasks](tasks.md#tasks-across-replicas-redis).",
    ),
    "INTERNAL_ERROR": (
        "Something failed that the server did not expect: a bug.",
        "Any tool. The client sees only the tool name and the exception type; the "
        "traceback goes to the server log. Please report it.",
    ),
}

HEADER = """\
# Error codes

<!-- Generated by `python -m python_mcp_server.docs_gen` from errors.ErrorCode;
     do not edit by hand: edit MEANINGS in docs_gen/errors_ref.py instead. -->

Misuse of a tool (a bad argument, an unknown session, a limit reached) comes back as a
tool error: a result with `isError: true` whose text starts with a stable code and a colon,
for example `SESSION_NOT_FOUND: no session 'analysis'; ...`. Match on the code, not on the
message. Failures of *user code* are not tool errors: `run_python_code` returns status
`error` (or `timeout`) with the exception, and only some of them carry a code in
`error.code` (`KERNEL_DIED`, `MEMORY_LIMIT_EXCEEDED`, `EXECUTION_TIMEOUT`). HTTP-level
refusals (a missing token, a forbidden origin, a body too large) and the file routes answer
with an HTTP status and `{"error": {"code": ..., "message": ...}}` carrying the same codes.

```python
result = await client.call_tool(
    "run_python_code", {"code": "1", "session_id": "nope"}, raise_on_error=False
)
assert result.is_error
code = result.content[0].text.split(":", 1)[0]  # "SESSION_NOT_FOUND"
```
"""


def exception_classes() -> dict[str, list[str]]:
    """code -> the exception classes in errors.py that carry it."""
    found: dict[str, list[str]] = {}
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, ServerError) and cls is not ServerError:
            found.setdefault(cls.code.value, []).append(name)
    return found


def render_errors_reference() -> str:
    classes = exception_classes()
    out = [HEADER, "## Codes\n", "| Code | Meaning |", "| --- | --- |"]
    for code in ErrorCode:
        meaning, _ = MEANINGS.get(code.value, ("(undocumented)", ""))
        out.append(f"| [`{code.value}`](#{code.value.lower()}) | {meaning} |")
    out.append("")
    for code in ErrorCode:
        meaning, when = MEANINGS.get(code.value, ("(undocumented)", ""))
        out.append(f"### `{code.value}` {{#{code.value.lower()}}}\n")
        out.append(f"{meaning}\n")
        if when:
            out.append(f"**When:** {when}\n")
        if code.value in classes:
            names = ", ".join(f"`{n}`" for n in sorted(classes[code.value]))
            out.append(f"Raised in code as {names}.\n")
    return "\n".join(out).rstrip() + "\n"
