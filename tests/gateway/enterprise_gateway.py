"""A real Jupyter Enterprise Gateway for tests and benchmarks, from its own venv.

The gateway lives in ``.gateway-venv-eg`` (pinned; never the project's venv, nor the
Kernel Gateway's: Enterprise Gateway pins its own jupyter_server stack). It runs with its
default settings (so ``root`` is among its ``unauthorized_users`` and every kernel start
must carry a ``KERNEL_USERNAME``) on a free loopback port with a token, in a workspace
folder shared with the servers under test. What the tests add: kernel listing (for their
leak checks), the project's kernel variables let through (``EG_CLIENT_ENVS``, as
``KG_ENV_WHITELIST`` for Kernel Gateway), its response socket kept on loopback, and a
``python3`` kernelspec running the project's interpreter (local kernel processes).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from tests.gateway.kernel_gateway import (
    ENV_WHITELIST,
    REPO,
    GatewayVenv,
    KernelGatewayProcess,
    jupyter_env,
    spawn_gateway,
)
from tests.helpers import free_port

#: The Enterprise Gateway release the suite runs against.
ENTERPRISE_GATEWAY_VERSION = "3.3.0"
ENTERPRISE_GATEWAY_VENV = GatewayVenv(
    REPO / ".gateway-venv-eg",
    (f"jupyter-enterprise-gateway=={ENTERPRISE_GATEWAY_VERSION}", "ipykernel"),
    "jupyter-enterprisegateway",
)


def start_enterprise_gateway(
    root: Path, *, env: Mapping[str, str] | None = None, timeout: float = 90.0
) -> KernelGatewayProcess:
    """Start Enterprise Gateway in ``root/workspace``; return once its REST API answers.

    ``env`` adds settings (``EG_*`` variables) to the defaults.
    """
    command = ENTERPRISE_GATEWAY_VENV.required_command()
    port = free_port()
    token = secrets.token_hex(16)
    args = [
        str(command),
        "--EnterpriseGatewayApp.ip=127.0.0.1",
        f"--EnterpriseGatewayApp.port={port}",
        "--EnterpriseGatewayApp.port_retries=0",
        "--EnterpriseGatewayApp.list_kernels=True",
    ]
    environment = {
        **os.environ,
        **jupyter_env(root / "jupyter"),
        "EG_AUTH_TOKEN": token,
        "EG_CLIENT_ENVS": ENV_WHITELIST,
        # Only remote kernels report back on it, but it must never listen beyond loopback.
        "EG_RESPONSE_IP": "127.0.0.1",
        "EG_RESPONSE_PORT": str(free_port()),
        "EG_RESPONSE_PORT_RETRIES": "0",
        **(env or {}),
    }
    return spawn_gateway(
        root,
        args,
        environment,
        port=port,
        token=token,
        timeout=timeout,
        kind="enterprise-gateway",
    )
