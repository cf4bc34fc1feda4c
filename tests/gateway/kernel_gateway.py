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
NODELAY_DIR = REPO / "deploy" / "kernel-gateway"
#: Project variables the gateway lets clients set in a kernel's environment.
ENV_WHITELIST = (
    "OUTPUT_PATH,MPLBACKEND,PYTHONUNBUFFERED,PYTHONIOENCODING,PYDEVD_DISABLE_FILE_VALIDATION"
)


@dataclass(frozen=True)
class GatewayVenv:
    """A gateway's own venv in the repository, created from the registry on first use."""

    path: Path
    requirements: tuple[str, ...]
    script: str

    @property
    def create_hint(self) -> str:
        name = self.path.name
        return f"python3 -m venv {name} && {name}/bin/pip install {' '.join(self.requirements)}"

    def required_command(self) -> Path:
        """The gateway's script; RuntimeError saying how to make the venv when missing."""
        command = self.command()
        if command is None:
            raise RuntimeError(f"no gateway venv at {self.path}: {self.create_hint}")
        return command

    def command(self) -> Path | None:
        """The gateway's script in the venv, if it is installed."""
        path = self.path / "bin" / self.script
        return path if path.exists() else None

    def ensure(self) -> tuple[Path | None, str]:
        """The gateway script, creating its venv first when it is missing.

        Returns the script (or None) and, when it could not be made, what went wrong: the
        README's test line then sets up everything the suite needs on a fresh machine.
        """
        command = self.command()
        if command is not None:
            return command, ""
        # Test workers run in parallel (pytest-xdist): one creates the venv, the others wait.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            command = self.command()
            if command is not None:
                return command, ""
            return self._create()

    def _create(self) -> tuple[Path | None, str]:
        steps = [
            [sys.executable, "-m", "venv", str(self.path)],
            [str(self.path / "bin" / "pip"), "install", "-q", *self.requirements],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                return None, f"{' '.join(step[:3])} failed: {done.stderr.strip()[-500:]}"
        return self.command(), ""


KERNEL_GATEWAY_VENV = GatewayVenv(
    REPO / ".gateway-venv", ("jupyter_kernel_gateway>=3", "ipykernel"), "jupyter-kernelgateway"
)


@dataclass
class KernelGatewayProcess:
    """A running gateway: where it is, its token, its workspace, and its process."""

    process: subprocess.Popen[bytes]
    port: int
    token: str
    workspace: Path
    log_path: Path
    #: Which gateway this is, as test ids and messages name it.
    kind: str = "kernel-gateway"

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


def jupyter_env(jupyter: Path) -> dict[str, str]:
    """A gateway's own Jupyter folders, with the ``python3`` kernelspec of this project."""
    write_kernelspec(jupyter / "share", sys.executable)
    return {
        "JUPYTER_PATH": str(jupyter / "share"),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
    }


def start_kernel_gateway(
    root: Path, *, nodelay: bool = False, timeout: float = 60.0
) -> KernelGatewayProcess:
    """Start the gateway in ``root/workspace``; return once its REST API answers."""
    command = KERNEL_GATEWAY_VENV.required_command()
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
        **jupyter_env(root / "jupyter"),
        "KG_AUTH_TOKEN": token,
        "KG_ENV_WHITELIST": ENV_WHITELIST,
    }
    if nodelay:
        args.append(
            "--KernelGatewayApp.kernel_websocket_connection_class="
            "mcp_gateway_nodelay.NoDelayConnection"
        )
        env["PYTHONPATH"] = str(NODELAY_DIR)
    return spawn_gateway(root, args, env, port=port, token=token, timeout=timeout)


def spawn_gateway(
    root: Path,
    args: list[str],
    env: dict[str, str],
    *,
    port: int,
    token: str,
    timeout: float,
    kind: str = "kernel-gateway",
) -> KernelGatewayProcess:
    """Run a gateway in ``root/workspace`` with its log in ``root``; return once it answers."""
    workspace = root / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    log_path = root / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, cwd=workspace, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    gateway = KernelGatewayProcess(process, port, token, workspace, log_path, kind=kind)
    return wait_answering(gateway, timeout)


def wait_answering(gateway: KernelGatewayProcess, timeout: float) -> KernelGatewayProcess:
    """Return the gateway once its REST API answers; stop it and raise if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"the {gateway.kind} exited at start:\n{gateway.log()}")
        try:
            gateway.kernel_ids()
            return gateway
        except httpx.HTTPError:
            time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"the {gateway.kind} did not answer within {timeout:g} s:\n{gateway.log()}")
