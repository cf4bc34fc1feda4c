"""The scripts in examples/ pass against a started server and fail against a wrong one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import StartServer
from tests.helpers import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = ["fastmcp_client.py", "raw_httpx.py"]

#: A server that answers like python-mcp-server but gets arithmetic wrong.
WRONG_SERVER = textwrap.dedent(
    """
    import sys
    from fastmcp import FastMCP

    mcp = FastMCP("python-mcp-server")

    @mcp.tool
    def run_python_code(code: str, session_id: str | None = None) -> dict:
        return {"status": "ok", "stdout": "", "stderr": "", "result": "41", "error": None}

    @mcp.tool
    def create_session(session_id: str) -> dict:
        return {"session_id": session_id}

    @mcp.tool
    def list_sessions() -> dict:
        return {"sessions": []}

    mcp.run(transport="http", host="127.0.0.1", port=int(sys.argv[1]), show_banner=False)
    """
)


def run_example(script: str, url: str, token: str = "") -> subprocess.CompletedProcess[str]:
    """Run an example as its docstring says: the server's token in MCP_AUTH_TOKEN."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), url],
        env={**os.environ, "MCP_AUTH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_examples_pass_against_the_server(start_server: StartServer) -> None:
    server = start_server()
    for script in SCRIPTS:
        done = run_example(script, server.mcp_url, server.token)
        assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
        assert "all checks passed" in done.stdout
        assert "FAIL" not in done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_examples_exit_non_zero_on_a_wrong_answer(script: str, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "wrong.log").open("wb")
    wrong = subprocess.Popen(
        [sys.executable, "-c", WRONG_SERVER, str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_listening(port, wrong)
        done = run_example(script, f"http://127.0.0.1:{port}/mcp")
    finally:
        wrong.terminate()
        wrong.wait(timeout=20)
        log.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stderr
    assert "all checks passed" not in done.stdout


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the wrong-answer server exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError("the wrong-answer server did not listen")
