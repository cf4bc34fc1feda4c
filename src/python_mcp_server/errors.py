"""The project's one exception tree and its stable error codes.

Core and infra raise only these. The server's error middleware turns them into MCP tool
errors whose message starts with the code (``SESSION_NOT_FOUND: ...``), so clients can
match on a stable prefix. Outcomes of *user code* are never exceptions: they are data in
the execution result.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Stable codes that prefix every tool error message. Documented in docs/errors.md."""

    INVALID_INPUT = "INVALID_INPUT"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_EXISTS = "SESSION_EXISTS"
    SESSION_LIMIT = "SESSION_LIMIT"
    SESSION_BUSY = "SESSION_BUSY"
    SESSION_CLOSED = "SESSION_CLOSED"
    KERNEL_START_FAILED = "KERNEL_START_FAILED"
    SANDBOX_UNAVAILABLE = "SANDBOX_UNAVAILABLE"
    KERNEL_DIED = "KERNEL_DIED"
    KERNEL_UNRESPONSIVE = "KERNEL_UNRESPONSIVE"
    KERNEL_REPLY_LOST = "KERNEL_REPLY_LOST"
    EXECUTION_TIMEOUT = "EXECUTION_TIMEOUT"
    MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
    PYTHON_ERROR = "PYTHON_ERROR"
    PATH_OUTSIDE_WORKSPACE = "PATH_OUTSIDE_WORKSPACE"
    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    FILE_EXISTS = "FILE_EXISTS"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    DISK_FULL = "DISK_FULL"
    PACKAGE_INSTALLATION_ERROR = "PACKAGE_INSTALLATION_ERROR"
    VENV_NOT_FOUND = "VENV_NOT_FOUND"
    VENV_EXISTS = "VENV_EXISTS"
    VENV_IN_USE = "VENV_IN_USE"
    CONFIRMATION_REQUIRED = "CONFIRMATION_REQUIRED"
    UNSAFE_CODE = "UNSAFE_CODE"
    UNAUTHORIZED = "UNAUTHORIZED"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    FORBIDDEN_ORIGIN = "FORBIDDEN_ORIGIN"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    GATEWAY_ERROR = "GATEWAY_ERROR"
    GATEWAY_FORBIDDEN = "GATEWAY_FORBIDDEN"
    KERNEL_USERNAME_REFUSED = "KERNEL_USERNAME_REFUSED"
    NOTEBOOK_INVALID = "NOTEBOOK_INVALID"
    NETWORK_POLICY_REFUSED = "NETWORK_POLICY_REFUSED"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    TASK_STORE_UNAVAILABLE = "TASK_STORE_UNAVAILABLE"
    TASK_LOST = "TASK_LOST"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class ServerError(Exception):
    """Base of every error this project raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class InvalidInputError(ServerError):
    code = ErrorCode.INVALID_INPUT


class SessionNotFoundError(ServerError):
    code = ErrorCode.SESSION_NOT_FOUND


class SessionExistsError(ServerError):
    code = ErrorCode.SESSION_EXISTS


class SessionLimitError(ServerError):
    code = ErrorCode.SESSION_LIMIT


class KernelStartError(ServerError):
    code = ErrorCode.KERNEL_START_FAILED


class SandboxUnavailableError(KernelStartError):
    """The kernel sandbox does not work here, and the operator did not opt out of it."""

    code = ErrorCode.SANDBOX_UNAVAILABLE


class KernelSilentError(KernelStartError):
    """The kernel process runs but never answered: it may be worth one fresh start."""


class KernelDiedError(ServerError):
    code = ErrorCode.KERNEL_DIED


class KernelUnresponsiveError(ServerError):
    code = ErrorCode.KERNEL_UNRESPONSIVE


class KernelReplyLostError(ServerError):
    """The kernel handled a request but dropped its reply (an interrupt landed in it),
    also when the request was sent again: the kernel itself is fine."""

    code = ErrorCode.KERNEL_REPLY_LOST


class SessionBusyError(ServerError):
    code = ErrorCode.SESSION_BUSY


class SessionClosedError(ServerError):
    """The session was deleted, reaped or shut down while the call waited or ran."""

    code = ErrorCode.SESSION_CLOSED


class StorageError(ServerError):
    """The state database could not be read or written (wraps sqlite3 and psycopg errors)."""

    code = ErrorCode.INTERNAL_ERROR


class DatabaseUnavailableError(StorageError):
    """The shared database cannot be reached (refused, gone, or no connection in time)."""

    code = ErrorCode.DATABASE_UNAVAILABLE


class PathOutsideWorkspaceError(ServerError):
    code = ErrorCode.PATH_OUTSIDE_WORKSPACE


class FileNotFoundInWorkspaceError(ServerError):
    code = ErrorCode.FILE_NOT_FOUND


class FileExistsInWorkspaceError(ServerError):
    code = ErrorCode.FILE_EXISTS


class FileTooLargeError(ServerError):
    code = ErrorCode.FILE_TOO_LARGE


class DiskFullError(ServerError):
    """The file system (or a quota) has no room left for what the server had to write."""

    code = ErrorCode.DISK_FULL


class PackageInstallationError(ServerError):
    code = ErrorCode.PACKAGE_INSTALLATION_ERROR


class VenvNotFoundError(ServerError):
    code = ErrorCode.VENV_NOT_FOUND


class VenvExistsError(ServerError):
    code = ErrorCode.VENV_EXISTS


class VenvInUseError(ServerError):
    code = ErrorCode.VENV_IN_USE


class ConfirmationRequiredError(ServerError):
    code = ErrorCode.CONFIRMATION_REQUIRED


class UnsafeCodeError(ServerError):
    code = ErrorCode.UNSAFE_CODE


class GatewayError(ServerError):
    code = ErrorCode.GATEWAY_ERROR


class GatewayForbiddenError(GatewayError):
    """The gateway refused to start a kernel (HTTP 403): e.g. Enterprise Gateway does not
    authorize the kernel's user (``KERNEL_USERNAME``)."""

    code = ErrorCode.GATEWAY_FORBIDDEN


class KernelUsernameRefusedError(ServerError):
    """A session's kernel would run as a privileged user: refused before the gateway is
    asked."""

    code = ErrorCode.KERNEL_USERNAME_REFUSED


class NotebookInvalidError(ServerError):
    """A notebook file that is not JSON, not nbformat 4, or fails the schema."""

    code = ErrorCode.NOTEBOOK_INVALID


class NetworkPolicyRefusedError(ServerError):
    code = ErrorCode.NETWORK_POLICY_REFUSED


class TaskStoreUnavailableError(ServerError):
    """The shared task store (Redis at ``MCP_REDIS_URL``) cannot be reached."""

    code = ErrorCode.TASK_STORE_UNAVAILABLE


class TaskLostError(ServerError):
    """The replica running a task stopped before the task ended; it is not run again."""

    code = ErrorCode.TASK_LOST
