"""The gateway launcher from the settings: kernels on a Jupyter Kernel/Enterprise Gateway.

Kernels there must see the same workspace as this server (a shared volume mounted at the
same path, or a gateway on this host started in the workspace), so the file tools and
the kernels act on one filesystem; see docs/deployment.md. The server's own ``KERNEL_*``
environment variables go with every kernel start (Enterprise Gateway reads the kernel
image and volumes from them), except ``KERNEL_USERNAME``: each start carries the user of
its session (``core.sessions.kernel_username``), which Enterprise Gateway authorizes. One
fixed name comes from ``MCP_GATEWAY_KERNEL_USERNAME``, else from a ``KERNEL_USERNAME`` in
the server's environment (as deployments set it before each session had its own).
"""

from __future__ import annotations

import logging
import os

from python_mcp_server.core.sessions.kernel_environment import kernel_environment
from python_mcp_server.core.sessions.kernel_username import (
    KernelUsernames,
    check_fixed_username,
)
from python_mcp_server.errors import KernelUsernameRefusedError
from python_mcp_server.infra.kernels.gateway import GatewayConfig, GatewayLauncher
from python_mcp_server.settings import Settings

logger = logging.getLogger(__name__)


def build_gateway_launcher(settings: Settings) -> GatewayLauncher:
    """Kernels on ``settings.gateway_url``, named by session id within the namespace."""
    assert settings.gateway_url is not None
    workspace = settings.workspace_path
    kernel_env = {k: v for k, v in os.environ.items() if k.startswith("KERNEL_")}
    fixed = fixed_username(settings.gateway_kernel_username, kernel_env.pop("KERNEL_USERNAME", ""))
    config = GatewayConfig(
        url=settings.gateway_url,
        token=settings.gateway_token,
        namespace=settings.gateway_namespace,
        start_timeout=settings.kernel_start_timeout,
        kernel_env=kernel_env,
    )
    default_env = GatewayLauncher.env_for(kernel_environment(workspace), str(workspace))
    usernames = KernelUsernames(fixed)
    return GatewayLauncher(config, default_env, usernames.for_session)


def fixed_username(setting: str | None, from_environment: str) -> str | None:
    """The one user name for every kernel, if the deployment fixes one: the setting, else
    the server's own ``KERNEL_USERNAME``; None: each session's principal."""
    if setting is not None:
        return setting
    if not from_environment:
        return None
    try:
        name = check_fixed_username(from_environment)
    except ValueError as exc:
        raise KernelUsernameRefusedError(
            f"KERNEL_USERNAME in the server's environment: {exc}"
        ) from exc
    logger.info("every kernel starts as %r (KERNEL_USERNAME of the server)", name)
    return name
