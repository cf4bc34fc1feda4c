"""The server-side runner: confined like a kernel, a scrubbed environment, no state folder."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels.limits import MIB, ResourceLimits
from python_mcp_server.infra.sandboxed_run import RunnerConfig, SandboxedRunner
from tests.sandbox_support import require_bwrap

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


def runner(layout: dict[str, Path], *, sandboxed: bool) -> SandboxedRunner:
    return SandboxedRunner(
        RunnerConfig(
            bwrap="bwrap" if sandboxed else None,
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
    networked = await probe(confined, layout["state"], network=True)
    assert networked["network"] is True  # installs: network as the install policy allows
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
