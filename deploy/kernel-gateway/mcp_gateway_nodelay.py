"""Gateway-side no-delay for Jupyter Kernel Gateway (and jupyter_server based gateways).

A stock gateway leaves Nagle's algorithm on for kernel websockets: each Jupyter message is
a small frame, so the next frame of a reply waits for the client's ACK of the previous one
(Linux delays ACKs up to 40 ms). python-mcp-server already answers with quick ACKs; this
class also turns Nagle off on the gateway's side (tornado ``set_nodelay``).

Use: put this file on the gateway's PYTHONPATH and start it with
``--KernelGatewayApp.kernel_websocket_connection_class=mcp_gateway_nodelay.NoDelayConnection``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class NoDelayConnection(ZMQChannelsWebsocketConnection):  # type: ignore[misc]
    """The stock kernel websocket connection with TCP_NODELAY on the client's socket."""

    def connect(self) -> asyncio.Future[None] | None:
        handler: Any = self.websocket_handler
        if handler is not None and getattr(handler, "ws_connection", None) is not None:
            handler.set_nodelay(True)
        return super().connect()  # type: ignore[no-any-return]
