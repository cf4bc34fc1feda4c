"""The egress proxy's cost on an install, measured in one run: direct against proxied.

A small wheel is served from a package index this bench starts on loopback
(``http.server`` over a PEP 503 ``simple/`` folder). The same ``pip install`` (fresh
target folder, no cache) then runs alternately:

- direct: ``--index-url http://127.0.0.1:PORT/simple``;
- proxied: ``--index-url http://bench-index.test:PORT/simple`` with ``--proxy`` set to
  the in-sandbox forwarder's loop (``infra/network/forwarder.py``, the real code, run as a
  kernel runs it) in front of the server's ``EgressProxy`` (its real decision, the name
  pinned to 127.0.0.1 as ``MCP_KERNEL_NETWORK_HOSTS`` would). The sandbox itself is left
  out: it costs the same either way.

Prints medians and the ratio proxied/direct. Target: <= 1.2x.
Run: ``.venv/bin/python bench/bench_proxy.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.wheels import build_wheel

from _common import median_ms
from python_mcp_server.infra.network.access import NetworkAccess
from python_mcp_server.infra.network.forwarder import forwarder_config
from python_mcp_server.infra.network.proxy import EgressProxy

NAME = "bench-index.test"
PACKAGE = "pmcp-bench-tiny"


def serve_index(root: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    """A PEP 503 index of one wheel, on loopback."""
    root.mkdir(parents=True)
    wheel = build_wheel(root, PACKAGE, "1.0", body="VALUE = 1\n" + "# padding\n" * 2000)
    page = root / "simple" / PACKAGE
    page.mkdir(parents=True)
    (page / "index.html").write_text(f'<a href="../../{wheel.name}">{wheel.name}</a>\n')

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def start_proxy(folder: Path, index_port: int) -> tuple[asyncio.AbstractEventLoop, Path]:
    """The server's egress proxy on a Unix socket, in a thread of its own."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    access = NetworkAccess(
        "allowlist", frozenset({NAME}), frozenset({index_port}), ((NAME, "127.0.0.1"),)
    )
    path = folder / "egress.sock"
    asyncio.run_coroutine_threadsafe(EgressProxy().listen(path, access), loop).result(10)
    return loop, path


def start_forwarder(socket_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The forwarder loop exactly as a sandboxed kernel starts it (listening fd inherited)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    loop = forwarder_config(socket_path=socket_path)["loop"]
    fd = listener.fileno()
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", loop, str(fd), str(socket_path)], pass_fds=(fd,)
    )
    port = listener.getsockname()[1]
    listener.close()
    return process, port


def install(index: str, target: Path, proxy_port: int | None) -> float:
    env = {"PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir", "-q"]
    argv += ["--disable-pip-version-check", "--no-deps", "--trusted-host", urlsplit(index).netloc]
    if proxy_port is not None:
        argv += ["--proxy", f"http://127.0.0.1:{proxy_port}"]
    argv += ["--index-url", index, "--target", str(target), PACKAGE]
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    assert (target / "pmcp_bench_tiny" / "__init__.py").is_file()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    folder = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    index, port = serve_index(folder / "index")
    loop, socket_path = start_proxy(folder, port)
    forwarder, forward_port = start_forwarder(socket_path)
    samples: dict[str, list[float]] = {"direct": [], "proxied": []}
    try:
        for number in range(rounds + 1):  # the first round warms pip's imports up
            direct = install(f"http://127.0.0.1:{port}/simple", folder / f"d{number}", None)
            proxied = install(f"http://{NAME}:{port}/simple", folder / f"p{number}", forward_port)
            if number:
                samples["direct"].append(direct)
                samples["proxied"].append(proxied)
    finally:
        forwarder.kill()
        forwarder.wait()
        loop.call_soon_threadsafe(loop.stop)
        index.shutdown()
    direct_ms, proxied_ms = median_ms(samples["direct"]), median_ms(samples["proxied"])
    print(f"pip install of a small wheel, median of {rounds}:")
    print(f"  direct   {direct_ms:8.1f} ms")
    print(f"  proxied  {proxied_ms:8.1f} ms   (forwarder + egress proxy)")
    print(f"  ratio    {proxied_ms / direct_ms:8.3f}x   (target <= 1.2x)")


if __name__ == "__main__":
    main()
