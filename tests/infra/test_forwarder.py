"""The in-sandbox forwarder a kernel program starts: a fork relaying TCP to the proxy socket."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil

from python_mcp_server.infra.network.forwarder import forwarder_config

#: Starts the forwarder as a kernel program does, says the child's pid, waits for stdin.
DRIVER = """\
import json, sys
from python_mcp_server.infra.kernels.kernel_program import start_forwarder
print(start_forwarder(json.loads(sys.argv[1])), flush=True)
sys.stdin.read()
"""


def echo_once(server: socket.socket) -> None:
    """Answer one connection on the Unix socket with what it sent, prefixed."""
    connection, _ = server.accept()
    with connection:
        data = connection.recv(1024)
        connection.sendall(b"proxy got " + data)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_forwarder_is_a_fork_relaying_loopback_tcp_to_the_proxy_socket(tmp_path: Path) -> None:
    """No second interpreter starts: the forwarder is the kernel program's own fork (same
    command line), and it relays a loopback connection to the proxy's Unix socket."""
    path = tmp_path / "egress.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(30)
    answering = threading.Thread(target=echo_once, args=(server,), daemon=True)
    answering.start()
    port = free_port()
    spec = forwarder_config(port=port, socket_path=path)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    child = 0
    try:
        assert driver.stdout is not None
        child = int(driver.stdout.readline())
        forwarder = psutil.Process(child)
        assert forwarder.ppid() == driver.pid
        assert forwarder.cmdline() == psutil.Process(driver.pid).cmdline()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(b"CONNECT pypi.org:443")
            client.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := client.recv(1024):
                reply += chunk
        assert reply == b"proxy got CONNECT pypi.org:443"
        answering.join(timeout=30)
        assert not answering.is_alive()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
        if child:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(child).wait(timeout=30)
        server.close()
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
