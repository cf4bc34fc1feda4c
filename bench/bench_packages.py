"""Packages and environments: uv against pip, venv creation, kernel start per environment.

Run: ``.venv/bin/python bench/bench_packages.py [rounds]``. Prints medians and ratios
against baselines measured in the same run:

- the same small install (a local wheel, then ``tomli-w`` from the registry) by uv and by
  pip, each into a fresh environment, caches warm (a first untimed round warms them);
- ``create_venv`` (uv venv + link file + metadata; target <= 3 s) against a bare
  ``python -m venv --without-pip``, and the default environment made at server start;
- a kernel's start (launch to ready) in a new environment against the default one
  (target <= 1.2x), and against the server's own interpreter for reference.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.wheels import build_test_wheels

from _common import timed
from python_mcp_server.core.packages.installer import Installer
from python_mcp_server.core.packages.requirements import parse_packages
from python_mcp_server.core.sessions.kernel_factory import server_python
from python_mcp_server.infra.subprocess import run_command
from python_mcp_server.server.services import Services, build_services
from python_mcp_server.settings import Settings


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


class Bench:
    def __init__(self, root: Path, rounds: int) -> None:
        self.root = root
        self.rounds = rounds
        self.counter = 0
        wheels = build_test_wheels(root)
        self.local = Settings(
            workspace_dir=root / "ws", kernel_pool_size=0, session_idle_timeout=0, **wheels
        )
        self.registry = self.local.model_copy(
            update={"pip_find_links": None, "pip_index_url": None}
        )
        (root / "ws").mkdir()
        self.services: Services = build_services(self.local)

    def fresh_name(self) -> str:
        self.counter += 1
        return f"b{self.counter}"

    async def install_round(self, settings: Settings, spec: str, tool: str) -> float:
        environments = self.services.environments
        name = self.fresh_name()
        await environments.create(name)
        config = build_services(settings).environments.installer.config
        if tool == "pip":
            config = dataclasses.replace(config, uv=None)
        installer = Installer(config, environments.installer.runner)
        target = environments.target(name)
        elapsed = await timed(lambda: installer.install(target, parse_packages(spec)))
        await environments.delete(name)
        return elapsed

    async def uv_vs_pip(self, label: str, settings: Settings, spec: str) -> None:
        for tool in ("uv", "pip"):  # warm both caches
            await self.install_round(settings, spec, tool)
        times: dict[str, list[float]] = {"uv": [], "pip": []}
        for _ in range(self.rounds):
            for tool in ("uv", "pip"):
                times[tool].append(await self.install_round(settings, spec, tool))
        uv, pip = median_ms(times["uv"]), median_ms(times["pip"])
        print(f"install {label:<28} uv {uv:7.0f} ms   pip {pip:7.0f} ms   pip/uv {pip / uv:5.1f}x")

    async def create_venv(self) -> None:
        environments = self.services.environments
        created: list[float] = []
        bare: list[float] = []
        for _ in range(self.rounds):
            name = self.fresh_name()
            started = time.perf_counter()
            await environments.create(name)
            created.append(time.perf_counter() - started)
            await environments.delete(name)
            path = self.root / f"bare-{self.counter}"
            started = time.perf_counter()
            await run_command(
                [sys.executable, "-m", "venv", "--without-pip", str(path)], timeout=120
            )
            bare.append(time.perf_counter() - started)
            shutil.rmtree(path)
        ours, base = median_ms(created), median_ms(bare)
        verdict = "meets" if ours <= 3000 else "MISSES"
        print(
            f"create_venv (uv, linked)          {ours:7.0f} ms   "
            f"python -m venv --without-pip {base:7.0f} ms   ratio {ours / base:4.2f}x   "
            f"({verdict} the 3 s target)"
        )
        starts = []
        for index in range(self.rounds):
            settings = self.local.model_copy(update={"venvs_dir": self.root / f"start-{index}"})
            services = build_services(settings)
            starts.append(await timed(services.environments.start))
            await services.environments.aclose()
        print(f"default environment at server start {median_ms(starts):7.0f} ms (fresh state)")

    async def kernel_start(self) -> None:
        environments = self.services.environments
        factory = self.services.sessions.factory
        await environments.create("bench-new")

        async def start(venv: str | None) -> float:
            started = time.perf_counter()
            client = await factory.start(venv, "bench")
            elapsed = time.perf_counter() - started
            await client.close(kill=True)
            return elapsed

        times: dict[str, list[float]] = {"new": [], "default": [], "server": []}
        await start(None)  # warm the OS file cache
        for _ in range(self.rounds):
            times["new"].append(await start("bench-new"))
            times["default"].append(await start(None))
            resolver = factory.python_for
            factory.python_for = server_python
            try:
                times["server"].append(await start(None))
            finally:
                factory.python_for = resolver
        new, default, server = (median_ms(times[k]) for k in ("new", "default", "server"))
        verdict = "meets" if new <= 1.2 * default else "MISSES"
        print(
            f"kernel start: new venv {new:5.0f} ms   default venv {default:5.0f} ms   "
            f"new/default {new / default:4.2f}x ({verdict} the 1.2x target)   "
            f"server python {server:5.0f} ms (default/server {default / server:4.2f}x)"
        )
        await environments.delete("bench-new")

    async def run(self) -> None:
        await self.services.environments.start()
        try:
            await self.uv_vs_pip("local wheel pmcp-tiny", self.local, "pmcp-tiny==1.0")
            await self.uv_vs_pip("registry tomli-w", self.registry, "tomli-w")
            await self.create_venv()
            await self.kernel_start()
        finally:
            await self.services.aclose()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = Path(tempfile.mkdtemp(prefix="bench-packages-"))
    print(f"python {sys.version.split()[0]}, {rounds} rounds, medians")
    try:
        asyncio.run(Bench(root, rounds).run())
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
