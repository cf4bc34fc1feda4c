"""The gateway launcher from the settings: kernels on a Jupyter Kernel/Enterprise Gateway.

Kernels there must see the same workspace as this server (a shared volume mounted at the
same path, or a gateway on this host started in the workspace), so the file tools and
the kernels act on one filesystem; see docs/deployment.md. The server's own ``KERNEL_*``
environment variables go with every kernel start (Enterprise Gateway reads the kernel
image, volumes and user from them).
"""

from __future__ import annotations

import os

from python_mcp_server.core.sessions.kernel_environment import kernel_environment
from python_mcp_server.infra.kernels.gateway import GatewayConfig, GatewayLauncher
from python_mcp_server.settings import Settings


def build_gateway_launcher(settings: Settings) -> GatewayLauncher:
    """Kernels on ``settings.gateway_url``, named by session id within the namespace."""
    assert settings.gateway_url is not None
    workspace = settings.workspace_path
    config = GatewayConfig(
        url=settings.gateway_url,
        token=settings.gateway_token,
        namespace=settings.gateway_namespace,
        start_timeout=settings.kernel_start_timeout,
        kernel_env={k: v for k, v in os.environ.items() if k.startswith("KERNEL_")},
    )
    default_env = GatewayLauncher.env_for(kernel_environment(workspace), str(workspace))
    return GatewayLauncher(config, default_env)
