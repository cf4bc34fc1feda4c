"""A real Jupyter Kernel Gateway for tests and benchmarks, from its own venv.

The gateway lives in ``.gateway-venv`` (never the project's venv: gateways pin their own
jupyter_server stack). It listens on a free loopback port with a token, runs in a
workspace folder (its kernels' working directory, shared with the servers under test) and
its ``python3`` kernelspec runs the project's interpreter, as a production kernel image
would hold the data stack (matplotlib for the rich-output tests).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
GATEWAY_VENV = REPO / ".gateway-venv"
NODELAY_DIR = REPO / "deploy" / "kernel-gateway"
#: Project variables the gateway lets clients set in a kernel's environment.
ENV_WHITELIST = (
    "OUTPUT_PATH,MPLBACKEND,PYTHONUNBUFFERED,PYTHONIOENCODING,PYDEVD_DISABLE_FILE_VALIDATION"
)
CREATE_VENV = (
    "python3 -m venv .gateway-venv && .gateway-venv/bin/pip install jupyter_kernel_gateway "
    "ipykernel"
)


def gateway_command() -> Path | None:
    """The ``jupyter-kernelgateway`` script of the gateway venv, if it is installed."""
    path = GATEWAY_VENV / "bin" / "jupyter-kernelgateway"
    return path if path.exists() else None


def ensure_gateway_venv() -> tuple[Path | None, str]:
    """The gateway script, creating its venv from the registry first when it is missing.

    Returns the script (or None) and, when it could not be made, what went wrong: the
    README's test line then sets up everything the suite needs on a fresh machine.
    """
    command = gateway_command()
    if command is not None:
        return command, ""
    # Test workers run in parallel (pytest-xdist): one creates the venv, the others wait.
    GATEWAY_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{GATEWAY_VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        command = gateway_command()
        if command is not None:
            return command, ""
        return _create_gateway_venv()


def _create_gateway_venv() -> tuple[Path | None, str]:
    steps = [
        [sys.executable, "-m", "venv", str(GATEWAY_VENV)],
        [
            str(GATEWAY_VENV / "bin" / "pip"),
            "install",
            "-q",
            "jupyter_kernel_gateway>=3",
            "ipykernel",
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            return None, f"{' '.join(step[:3])} failed: {done.stderr.strip()[-500:]}"
    return gateway_command(), ""


@dataclass
class KernelGatewayProcess:
    """A running gateway: where it is, its token, its workspace, and its process."""

    process: subprocess.Popen[bytes]
    port: int
    token: str
    workspace: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=30
        )

    def kernel_ids(self) -> set[str]:
        """Ids of the kernels the gateway runs now."""
        with self._http() as http:
            response = http.get("/api/kernels")
            response.raise_for_status()
            return {kernel["id"] for kernel in response.json()}

    def kernel(self, kernel_id: str) -> dict[str, Any] | None:
        """One kernel's model, or None when the gateway has no such kernel."""
        with self._http() as http:
            response = http.get(f"/api/kernels/{kernel_id}")
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return dict(response.json())

    def delete_kernel(self, kernel_id: str) -> None:
        with self._http() as http:
            response = http.delete(f"/api/kernels/{kernel_id}")
            if response.status_code != 404:
                response.raise_for_status()

    def kernel_processes(self) -> set[int]:
        """Pids of the kernel processes the gateway started."""
        found = set()
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return found
        for child in children:
            try:
                if "ipykernel_launcher" in " ".join(child.cmdline()):
                    found.add(child.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM (the gateway shuts its kernels down), then SIGKILL what is left."""
        survivors: list[psutil.Process] = []
        try:
            survivors = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _, alive = psutil.wait_procs(survivors, timeout=10)
        for proc in alive:
            proc.kill()


def write_kernelspec(jupyter_path: Path, python: str) -> None:
    """A ``python3`` kernelspec running ``python`` (it shadows the gateway venv's own)."""
    spec = jupyter_path / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    argv += ["--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"]
    kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))


def start_kernel_gateway(
    root: Path, *, nodelay: bool = False, timeout: float = 60.0
) -> KernelGatewayProcess:
    """Start the gateway in ``root/workspace``; return once its REST API answers."""
    command = gateway_command()
    if command is None:
        raise RuntimeError(f"no Kernel Gateway venv at {GATEWAY_VENV}: {CREATE_VENV}")
    workspace = root / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    jupyter = root / "jupyter"
    write_kernelspec(jupyter / "share", sys.executable)
    port = free_port()
    token = secrets.token_hex(16)
    args = [
        str(command),
        "--KernelGatewayApp.ip=127.0.0.1",
        f"--KernelGatewayApp.port={port}",
        "--KernelGatewayApp.port_retries=0",
        "--JupyterWebsocketPersonality.list_kernels=True",
    ]
    env = {
        **os.environ,
        "KG_AUTH_TOKEN": token,
        "KG_ENV_WHITELIST": ENV_WHITELIST,
        "JUPYTER_PATH": str(jupyter / "share"),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
    }
    if nodelay:
        args.append(
            "--KernelGatewayApp.kernel_websocket_connection_class="
            "mcp_gateway_nodelay.NoDelayConnection"
        )
        env["PYTHONPATH"] = str(NODELAY_DIR)
    log_path = root / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, cwd=workspace, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    gateway = KernelGatewayProcess(process, port, token, workspace, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Kernel Gateway exited at start:\n{gateway.log()}")
        try:
            gateway.kernel_ids()
            return gateway
        except httpx.HTTPError:
            time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"the Kernel Gateway did not answer within {timeout:g} s:\n{gateway.log()}")
