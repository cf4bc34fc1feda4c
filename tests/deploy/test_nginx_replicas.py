"""deploy/nginx/replicas.conf: valid for nginx, and the rules the balancer tests run.

tests/gateway/test_balancer.py proves the rules (``tests/services/nginx.py``) with real
replicas; this keeps the shipped example in step with them, and has ``nginx -t`` parse it
(with a loopback listener in place of TLS, whose certificates are the reader's).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.services.nginx import PROXY_RULES, TEMP_PATHS, UPSTREAM_RULES, nginx_binary
from tests.services.nginx import services_required as nginx_required

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "replicas.conf"


def directives(text: str) -> list[str]:
    """Each directive as one normalised line, comments dropped."""
    lines = (re.sub(r"#.*", "", line).strip() for line in text.splitlines())
    return [re.sub(r"\s+", " ", line) for line in lines if line]


def test_the_example_has_every_rule_the_tests_run() -> None:
    shipped = directives(EXAMPLE.read_text())
    for rule in directives(PROXY_RULES):
        assert rule in shipped, f"{rule!r} missing from {EXAMPLE.name}"
    servers = [line for line in shipped if line.startswith("server ") and ":" in line]
    assert len(servers) >= 2, servers
    rules = UPSTREAM_RULES.split()
    for line in servers:
        assert [part.split("=")[0] for part in line.rstrip(";").split()[2:]] == [
            rule.split("=")[0] for rule in rules
        ], line
    retries = [line for line in shipped if line.startswith("proxy_next_upstream ")]
    assert retries == ["proxy_next_upstream error timeout;"], retries
    assert not any(line.startswith("keepalive ") for line in shipped)
    assert not any("ip_hash" in line or line.startswith("hash ") for line in shipped)


def test_nginx_accepts_the_example(tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None:
        if nginx_required():
            pytest.fail("nginx is not installed (apt-get install nginx-light)", pytrace=False)
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    text = EXAMPLE.read_text()
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{free_port()};")
    text = re.sub(r"\n\s*ssl_certificate\S* [^;]+;", "", text)
    text = re.sub(r"10\.0\.0\.1\d:8000", f"127.0.0.1:{free_port()}", text)
    (tmp_path / "replicas.conf").write_text(text)
    temps = "".join(f"{name}_temp_path {tmp_path / name}; " for name in TEMP_PATHS)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        f"http {{ access_log off; {temps}include {tmp_path / 'replicas.conf'}; }}\n"
    )
    checked = subprocess.run(
        [
            binary,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr
