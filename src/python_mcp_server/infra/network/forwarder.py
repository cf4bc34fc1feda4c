"""The in-sandbox forwarder: TCP on the sandbox's own loopback to the proxy's Unix socket.

Under ``allowlist`` a kernel has a network namespace with nothing but loopback, so tools
that speak only TCP proxies (pip, uv, requests) need a TCP port to talk to. The kernel's
program (``kernel_program.py: start_forwarder``) binds ``127.0.0.1:PROXY_PORT`` inside
the namespace (after the rlimits, which the forwarder inherits), forks, and the child
runs ``_LOOP`` itself (no second interpreter: it forks before the kernel imports
anything), which hands every connection to the proxy socket bound into the sandbox; the
parent goes on to become the kernel. A one-off sandboxed script runs ``_LOOP`` in a fresh
``-I -S`` interpreter instead (``server/script_isolation.py``); a kernel forked from a
sandboxed template has none (its init hands the proxy its listening socket,
``isolation_program.py``). Standard library and threads only. It dies with the sandbox;
kernel code that kills it only loses its own network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The forwarder's port on the sandbox's own loopback (a namespace per kernel: no clashes).
PROXY_PORT = 3128
#: Where the proxy's socket appears inside the sandbox.
SANDBOX_SOCKET = Path("/run/python-mcp-server/egress.sock")

#: The forwarder itself; ``sys.argv``: [name, listening fd, proxy socket path].
_LOOP = """\
import signal, socket, sys, threading
signal.signal(signal.SIGINT, signal.SIG_IGN)
listener = socket.socket(fileno=int(sys.argv[1]))
path = sys.argv[2]
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(client):
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(path)
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join()
    except (OSError, RuntimeError):
        pass
    client.close()
    upstream.close()
while True:
    try:
        client, _ = listener.accept()
    except OSError:
        continue
    try:
        threading.Thread(target=serve, args=(client,), daemon=True).start()
    except RuntimeError:
        client.close()
"""


def forwarder_config(port: int = PROXY_PORT, socket_path: Path = SANDBOX_SOCKET) -> dict[str, Any]:
    """The ``forwarder`` entry of the kernel program's configuration (``kernel_program.py``)."""
    return {"port": port, "socket": str(socket_path), "loop": _LOOP}


def proxy_environment(port: int = PROXY_PORT) -> dict[str, str]:
    """Variables that send pip, uv, requests and urllib through the forwarder."""
    url = f"http://127.0.0.1:{port}"
    env = {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
    return env
