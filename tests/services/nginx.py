"""nginx (Debian ``nginx-light``) in round-robin front of server replicas, for the tests.

Each balancer is its own nginx master process (``daemon off``: the fixture holds its pid)
with a generated config in its own temporary folder: pid file, error and access logs and
every temp path live there, it listens on a free loopback port, and it is stopped (master
and workers gone) when the test ends.

The upstream rules are the ones ``deploy/nginx/replicas.conf`` ships (``UPSTREAM_RULES``,
``PROXY_RULES``; a test keeps the two in step): round robin without affinity, streaming
replies unbuffered, long reads, and a request is passed to another replica only when it
could not be sent (``proxy_next_upstream error timeout``, never ``non_idempotent``), so a
call in flight on a replica that dies is reported lost, never run again elsewhere. A
replica that failed is skipped for ``fail_timeout`` and then tried again.

The access log is JSON lines with ``$upstream_addr`` and ``$upstream_status``: tests read
which replica served each request (``"127.0.0.1:A, 127.0.0.1:B"`` when A was tried first).
nginx missing: a skip, unless ``PMCP_REQUIRE_SERVICES`` is set (``.ci/run``), then a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.helpers import free_port
from tests.services import services_required

#: Round robin, no affinity: a replica that failed once is skipped for a while, then tried.
UPSTREAM_RULES = "max_fails=1 fail_timeout={fail_timeout}s"
#: Streamable HTTP through the balancer; no retry of a request already sent to a replica.
PROXY_RULES = """\
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_buffering off;
proxy_cache off;
proxy_read_timeout 3600s;
proxy_send_timeout 3600s;
proxy_connect_timeout 2s;
proxy_next_upstream error timeout;
"""
LOG_FORMAT = (
    '{"upstream":"$upstream_addr","upstream_status":"$upstream_status",'
    '"status":"$status","method":"$request_method","uri":"$request_uri",'
    '"request_time":"$request_time"}'
)
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def render_config(root: Path, port: int, upstreams: Sequence[int], fail_timeout: float) -> str:
    """The whole nginx.conf of one balancer; every path it names is under ``root``."""
    rules = UPSTREAM_RULES.format(fail_timeout=f"{fail_timeout:g}")
    servers = "".join(f"        server 127.0.0.1:{p} {rules};\n" for p in upstreams)
    temps = "".join(f"    {name}_temp_path {root / 'tmp' / name};\n" for name in TEMP_PATHS)
    proxy = "".join(f"            {line}\n" for line in PROXY_RULES.splitlines())
    # As root the workers run as nobody (they only read from the sockets and the temp
    # folders below, which nobody owns); as an ordinary user nginx keeps that user.
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\n"
        f"pid {root / 'nginx.pid'};\nerror_log {root / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    log_format balancer escape=json '{LOG_FORMAT}';\n"
        f"    access_log {root / 'access.log'} balancer;\n"
        f"{temps}"
        "    client_max_body_size 64m;\n"
        "    upstream mcp_replicas {\n"
        f"{servers}"
        "    }\n"
        "    server {\n"
        f"        listen 127.0.0.1:{port};\n"
        "        location / {\n"
        "            proxy_pass http://mcp_replicas;\n"
        # The replicas listen on loopback and answer only loopback host names.
        "            proxy_set_header Host $http_host;\n"
        f"{proxy}"
        "        }\n"
        "    }\n"
        "}\n"
    )


@dataclass
class Balancer:
    """One running nginx: its port, folder and master process."""

    process: subprocess.Popen[bytes]
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access(self) -> list[dict[str, str]]:
        """The access log so far, one dict per finished request."""
        path = self.root / "access.log"
        if not path.exists():
            return []
        lines = path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def processes(self) -> set[int]:
        """The master and its workers."""
        try:
            master = psutil.Process(self.process.pid)
            return {self.process.pid} | {p.pid for p in master.children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def stop(self) -> None:
        """SIGQUIT (graceful: workers finish their requests), SIGKILL what is left."""
        procs = [psutil.Process(pid) for pid in self.processes() if psutil.pid_exists(pid)]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            proc.kill()


def start_balancer(
    upstreams: Sequence[int], *, fail_timeout: float = 1.0, timeout: float = 20.0
) -> Balancer:
    """Start nginx in front of ``127.0.0.1:<port>`` for each upstream; return once it listens."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
    root = Path(tempfile.mkdtemp(prefix="pmcp-nginx-"))
    root.chmod(0o755)  # the workers (nobody when we are root) reach the temp folders
    for name in TEMP_PATHS:
        (root / "tmp" / name).mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(root / "tmp" / name, "nobody", "nogroup")
    (root / "tmp").chmod(0o755)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(render_config(root, port, upstreams, fail_timeout))
    with (root / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    balancer = Balancer(process, port, root)
    try:
        _wait_listening(balancer, timeout)
    except BaseException:  # a test's timeout too: never leave this nginx running
        balancer.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return balancer


def _wait_listening(balancer: Balancer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            if balancer.process.poll() is not None:
                raise RuntimeError(f"nginx exited at start:\n{balancer.error_log()}")
            try:
                http.get(f"{balancer.url}/nginx-probe")
                return
            except httpx.TransportError:
                time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen within {timeout:g} s:\n{balancer.error_log()}")


@pytest.fixture
def nginx() -> Iterator[Callable[..., Balancer]]:
    """Start balancers with ``nginx([port_a, port_b])``; all are stopped, nothing left."""
    if nginx_binary() is None:
        message = "nginx is not installed (Debian: apt-get install nginx-light; .ci/run does)"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    started: list[Balancer] = []

    def start(upstreams: Sequence[int], **options: Any) -> Balancer:
        balancer = start_balancer(upstreams, **options)
        started.append(balancer)
        return balancer

    yield start
    left: set[int] = set()
    for balancer in started:
        pids = balancer.processes()
        balancer.stop()
        left |= {pid for pid in pids if psutil.pid_exists(pid) and _alive(pid)}
        shutil.rmtree(balancer.root, ignore_errors=True)
    assert not left, f"nginx processes left: {left}"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
