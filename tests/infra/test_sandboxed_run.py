"""The server-side runner: confined like a kernel, a scrubbed environment, no state folder."""

from __future__ import annotations

import json
import resource
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels.limits import MIB, ResourceLimits
from python_mcp_server.infra.network.access import NetworkAccess
from python_mcp_server.infra.network.proxy import EgressProxy
from python_mcp_server.infra.sandboxed_run import Egress, RunnerConfig, SandboxedRunner
from tests.sandbox_support import loopback_http, require_bwrap

SECRET = "runner-secret-51d0"
PROBE = """\
import json, os, resource, socket, sys
state = sys.argv[1]
try:
    seen = sorted(os.listdir(state))
except OSError as exc:
    seen = [type(exc).__name__]
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2).close()
    network = True
except OSError:
    network = False
print(json.dumps({
    "env": dict(os.environ),
    "state": seen,
    "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
    "network": network,
}))
"""


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    state = tmp_path / "state"
    state.mkdir()
    (state / "history.sqlite3").write_text("server records")
    (state / "token").write_text(SECRET)
    monkeypatch.setenv("PMCP_TEST_SECRET", SECRET)
    monkeypatch.setenv("MCP_AUTH_TOKEN", SECRET)
    return {"state": state}


def runner(
    layout: dict[str, Path], *, sandboxed: bool, egress: Egress | None = None
) -> SandboxedRunner:
    return SandboxedRunner(
        RunnerConfig(
            bwrap="bwrap" if sandboxed else None,
            egress=egress,
            hidden_paths=(layout["state"],),
            readable_paths=(Path(sys.prefix), Path(sys.base_prefix)),
            limits=ResourceLimits(file_size_bytes=3 * MIB),
            passed_variables=("PATH", "HOME", "LANG"),
        )
    )


async def probe(runner: SandboxedRunner, state: Path, network: bool) -> dict[str, object]:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = await runner.run(
            [sys.executable, "-I", "-c", PROBE, str(state), str(port)],
            timeout=60,
            network=network,
            env={"EXTRA": "given"},
        )
    assert result.ok, result.stderr
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict)
    return answer


async def test_sandboxed_run_sees_no_secret_no_state_and_no_network(
    layout: dict[str, Path],
) -> None:
    require_bwrap()
    confined = runner(layout, sandboxed=True)
    answer = await probe(confined, layout["state"], network=False)
    env = answer["env"]
    assert isinstance(env, dict)
    assert SECRET not in json.dumps(env)
    assert "MCP_AUTH_TOKEN" not in env
    assert "PMCP_TEST_SECRET" not in env
    assert env["EXTRA"] == "given"
    assert answer["state"] == []  # an empty folder laid over the state folder
    assert answer["network"] is False
    assert answer["fsize"] == 3 * MIB
    # Asking for network without an egress proxy: still a namespace of its own, empty.
    networked = await probe(confined, layout["state"], network=True)
    assert networked["network"] is False
    assert networked["state"] == []


async def test_unsandboxed_run_still_gets_a_scrubbed_environment(
    layout: dict[str, Path],
) -> None:
    plain = runner(layout, sandboxed=False)
    assert plain.command([sys.executable, "-c", "pass"])[0] == sys.executable  # the bootstrap
    answer = await probe(plain, layout["state"], network=False)
    env = answer["env"]
    assert isinstance(env, dict)
    assert SECRET not in json.dumps(env)
    assert set(env) <= {"PATH", "HOME", "LANG", "EXTRA", "LC_CTYPE"}
    assert answer["fsize"] == 3 * MIB
    # Not a boundary: without a sandbox the state folder is as visible as to the server.
    assert answer["state"] == ["history.sqlite3", "token"]


def test_a_relative_program_is_refused(layout: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="absolute"):
        runner(layout, sandboxed=False).command(["python", "-c", "pass"])
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] != 3 * MIB  # the server's own: unchanged


ALLOWED = "index.pmcp-run-test.example"
#: Through the forwarder (the proxy variables) to the allowed name, to a loopback address
#: and to link-local; then straight to the host's loopback listener, bypassing the proxy.
EGRESS_PROBE = """\
import json, os, socket, sys, urllib.error, urllib.request
def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return type(e).__name__, ""
out = {"proxy": os.environ.get("HTTP_PROXY")}
out["allowed"] = fetch(f"http://{sys.argv[3]}:{sys.argv[1]}/simple/")
out["loopback"] = fetch(f"http://127.0.0.1:{sys.argv[1]}/")
out["metadata"] = fetch("http://169.254.169.254/latest/meta-data/")
out["named_loopback"] = fetch(f"http://localhost:{sys.argv[1]}/")
direct, link = ("127.0.0.1", int(sys.argv[2])), ("169.254.169.254", 80)
for key, address in (("direct", direct), ("link", link)):
    try:
        socket.create_connection(address, 5).close()
        out[key] = "reached"
    except OSError as e:
        out[key] = type(e).__name__
print(json.dumps(out))
"""


@pytest.fixture
def upstream() -> Iterator[int]:
    with loopback_http("upstream") as port:
        yield port


async def test_a_networked_run_reaches_only_the_allowed_host_through_the_proxy(
    layout: dict[str, Path], upstream: int, tmp_path: Path
) -> None:
    """An install's network: the allowed (pinned) name through the forwarder and the
    proxy; neither the host's loopback (straight or through the proxy) nor link-local."""
    require_bwrap()
    proxy = EgressProxy()
    access = NetworkAccess(
        "allowlist",
        frozenset({ALLOWED, "localhost"}),
        frozenset({80, 443, upstream}),
        ((ALLOWED, "127.0.0.1"),),
        lan=True,  # as installs have it: private addresses, never loopback or link-local
    )
    sockets = tmp_path / "run"
    confined = runner(layout, sandboxed=True, egress=Egress(proxy, access, sockets))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        try:
            result = await confined.run(
                [sys.executable, "-I", "-c", EGRESS_PROBE, str(upstream), str(port), ALLOWED],
                timeout=60,
                network=True,
            )
        finally:
            await proxy.aclose()
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected to the host's loopback service
    assert result.ok, result.stderr
    out = json.loads(result.stdout)
    assert out["proxy"] == "http://127.0.0.1:3128"
    assert out["allowed"] == [200, "upstream /simple/"]
    assert out["loopback"][0] == 403
    assert "is an address" in out["loopback"][1]
    assert out["metadata"][0] == 403
    assert out["named_loopback"][0] == 403  # an allowed name resolving to loopback
    assert "not a public address" in out["named_loopback"][1]
    assert out["direct"] == "ConnectionRefusedError"  # the sandbox's own loopback: empty
    assert out["link"] == "OSError"  # no route out of the namespace
    assert list(sockets.iterdir()) == []  # the run's proxy socket went with it
