"""What a sandboxed fork template runs, and what its kernels become (MCP_SANDBOX_FORK).

The template is the server's interpreter with the server's packages only: nothing an
environment holds (its site-packages, ``.pth`` files, ``sitecustomize``) or the workspace
reaches it. Each forked kernel then is its environment's interpreter, as one bubblewrap
starts; an environment that installs a module the template imported gets kernels started
the ordinary way, and health says why.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastmcp import Client

from python_mcp_server.infra.kernels.base import KernelLaunchRequest
from python_mcp_server.infra.kernels.sandbox_fork import SandboxForkLauncher
from python_mcp_server.server.app import build_server
from python_mcp_server.server.services import Services, build_services
from python_mcp_server.settings import Settings
from tests.helpers import call, run
from tests.sandbox_support import require_bwrap

FORKED = {"sandbox": "bwrap", "kernel_preload": "numpy", "kernel_pool_size": 0}

PLANTED_PTH = "import sys; sys.planted_pth = getattr(sys, 'planted_pth', 0) + 1\n"
PLANTED_SITE = "import sys\nsys.planted_site = getattr(sys, 'planted_site', 0) + 1\n"

#: What a kernel shows of its interpreter; its session's own package folder (PYTHONPATH,
#: a new one per server) is named as such.
INTERPRETER = """\
import json, os, site, sys, sysconfig
import jupyter_core.paths
from IPython.core import application
own = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
def named(entries):
    return ['<session>' if entry in own else entry for entry in entries]
print(json.dumps({
    'path': named(sys.path), 'executable': sys.executable, 'prefix': sys.prefix,
    'exec_prefix': sys.exec_prefix, 'base_prefix': sys.base_prefix,
    'base_executable': sys._base_executable, 'flags': list(sys.flags),
    'site': site.getsitepackages(), 'user_site': site.ENABLE_USER_SITE,
    'prefixes': site.PREFIXES, 'virtual_env': os.environ.get('VIRTUAL_ENV'),
    'sysconfig': sysconfig.get_paths(), 'config_prefix': sysconfig.get_config_var('prefix'),
    'jupyter': jupyter_core.paths.ENV_CONFIG_PATH, 'ipython': application.ENV_CONFIG_DIRS,
}))
"""


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


def site_packages(services: Services) -> Path:
    return services.environments.target(None).site_packages


def template_proper(services: Services, session: str) -> psutil.Process:
    """The template process that forked a session's kernel (its waiter's parent)."""
    waiter = psutil.Process(services.sessions.get(session).kernel_pid)
    parent = waiter.parent()
    assert parent is not None
    return parent


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_the_template_runs_nothing_of_the_environment_or_the_workspace(
    client: Client[Any], services: Services, workspace: Path
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)  # the default configuration
    site = site_packages(services)
    (site / "zz_planted.pth").write_text(PLANTED_PTH)
    (site / "sitecustomize.py").write_text(PLANTED_SITE)
    (site / "planted_module.py").write_text("VALUE = 7\n")
    (workspace / "in_workspace.py").write_text("VALUE = 8\n")
    show = (
        "import sys, planted_module\nprint(sys.planted_pth, sys.planted_site, planted_module.VALUE)"
    )
    await call(client, "create_session", session_id="a")
    seen = await run(client, show, session_id="a")
    assert launcher.forked == 1, launcher.template_problem
    # As often as the environment's interpreter runs them (a venv reads its .pth files
    # twice), so never in the template: that would have counted on top.
    python = services.environments.python_for(None)
    alone = await asyncio.to_thread(
        subprocess.run, [python, "-c", show], capture_output=True, text=True, check=True
    )
    assert seen["stdout"] == alone.stdout, seen
    assert alone.stdout.endswith(" 1 7\n")
    found = await run(client, "import in_workspace\nprint(in_workspace.VALUE)", session_id="a")
    assert found["stdout"] == "8\n"
    template = template_proper(services, "a")
    assert template.cmdline()[:2] == [sys.executable, "-c"]  # the server's interpreter
    # Its view: neither the environment nor the workspace; nothing of them mapped.
    view = Path(f"/proc/{template.pid}/root")
    assert not (view / site.relative_to("/") / "zz_planted.pth").exists()
    assert not (view / site.relative_to("/")).exists()
    assert not list((view / workspace.relative_to("/")).iterdir())
    environment = services.environments.root("default")
    for mapped in template.memory_maps():
        assert not mapped.path.startswith((str(environment), str(workspace))), mapped.path
    # No variable that leads Python to code (its kernels get their PYTHONPATH as they fork).
    names = set(template.environ())
    assert not {"PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE"} & names


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_the_template_gets_no_variable_that_leads_python_to_code(
    services: Services, workspace: Path
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    request = KernelLaunchRequest(
        python=sys.executable,
        cwd=workspace,
        env={
            "PYTHONPATH": str(workspace),
            "PYTHONSTARTUP": str(workspace / "s.py"),
            "PYTHONHOME": str(workspace),
            "PYTHONUSERBASE": str(workspace),
            "PYTHONPYCACHEPREFIX": str(workspace),
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
        },
        writable_paths=(workspace,),
    )
    env = launcher._template_env(request)
    assert {name for name in env if name.startswith("PYTHON")} == {"PYTHONUNBUFFERED"}
    assert env["LANG"] == "C.UTF-8"
    assert workspace in launcher._template_hidden(request)


@pytest.fixture
async def interpreters(settings: Settings) -> list[dict[str, Any]]:
    """What a forked kernel, then a bubblewrap-started one, of the same workspace and
    default environment show of their interpreter (two servers, one after the other)."""
    seen: list[dict[str, Any]] = []
    for sandbox_fork in (True, False):
        values = settings.model_dump()
        values["sandbox_fork"] = sandbox_fork
        current = Settings(**values)
        services = build_services(current)
        async with Client(build_server(current, services)) as client:
            await call(client, "create_session", session_id="s")
            result = await run(client, INTERPRETER, session_id="s")
            assert result["status"] == "ok", result
            launcher = services.launcher
            forked = isinstance(launcher, SandboxForkLauncher) and launcher.forked == 1
            assert forked == sandbox_fork, getattr(launcher, "template_problem", None)
            seen.append(json.loads(result["stdout"]))
    return seen


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_a_forked_kernel_is_its_environments_interpreter(
    interpreters: list[dict[str, Any]],
) -> None:
    forked, started = interpreters
    assert forked == started
    assert "<session>" in forked["path"]
    assert forked["prefix"].endswith("default")  # the environment, not the server's venv
    assert forked["site"][0] in forked["path"]


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_an_environment_that_installs_a_preloaded_module_starts_its_kernels(
    client: Client[Any], services: Services
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    await call(client, "create_session", session_id="before")
    assert launcher.forked == 1, launcher.template_problem
    (template,) = launcher.templates
    planted = site_packages(services) / "numpy"
    planted.mkdir()
    (planted / "__init__.py").write_text("__version__ = 'planted'\n")
    await services.sessions.factory.environment_changed()  # as an install does
    assert launcher.templates == [template]  # it holds the server's packages only
    await call(client, "create_session", session_id="shadowed")
    seen = await run(client, "import numpy\nprint(numpy.__version__)", session_id="shadowed")
    assert seen["stdout"] == "planted\n"  # the environment's, as a bubblewrap kernel
    assert launcher.forked == 1
    health = await call(client, "health_check")
    assert health["preload"]["mode"] == "fork"
    assert "numpy" in health["preload"]["unforked"]["default"]
    assert health["problems"] == []  # a choice, not a fault
    shutil.rmtree(planted)
    await services.sessions.factory.environment_changed()  # as an uninstall does
    await call(client, "create_session", session_id="after")
    seen = await run(client, "import numpy\nprint(numpy.__version__)", session_id="after")
    assert seen["stdout"] != "planted\n"
    assert launcher.forked == 2
    assert launcher.templates == [template]  # forked from the same one, no new start
    health = await call(client, "health_check")
    assert health["preload"]["unforked"] == {}
    # A session's own package folder (its PYTHONPATH) is looked at too.
    packages = services.sessions.factory.packages
    assert packages is not None
    folder = packages.for_session("after")
    assert folder is not None
    (folder.site / "numpy").mkdir(parents=True)
    (folder.site / "numpy" / "__init__.py").write_text("__version__ = 'own'\n")
    await call(client, "restart_kernel", session_id="after", preserve_state=False)
    seen = await run(client, "import numpy\nprint(numpy.__version__)", session_id="after")
    assert seen["stdout"] == "own\n"
    assert launcher.forked == 2


@pytest.mark.parametrize(
    "settings_overrides", [{**FORKED, "kernel_preload": "numpy, only_in_environment"}]
)
async def test_a_preload_module_only_the_environment_has_is_preloaded_the_ordinary_way(
    client: Client[Any], services: Services
) -> None:
    launcher = services.launcher
    assert isinstance(launcher, SandboxForkLauncher)
    (site_packages(services) / "only_in_environment.py").write_text("VALUE = 5\n")
    await call(client, "create_session", session_id="a")
    seen = await run(
        client, "import sys\nprint(sys.modules['only_in_environment'].VALUE)", session_id="a"
    )
    assert seen["stdout"] == "5\n"  # imported before the first call, from the environment
    assert seen["message"] is None  # no preload failure to tell
    assert launcher.forked == 0
    health = await call(client, "health_check")
    assert health["preload"]["problem"] is None
    assert "only_in_environment" in health["preload"]["unforked"]["default"]
    assert launcher.templates == []  # of no use: not kept
    await services.sessions.factory.environment_changed()  # no install changes that
    assert launcher._refused == launcher._failed != {}  # so no template is started again
    await call(client, "create_session", session_id="b")
    code = "import sys\nprint('only_in_environment' in sys.modules)"
    seen = await run(client, code, session_id="b")
    assert seen["stdout"] == "True\n"
    assert launcher.templates == []
    assert launcher.forked == 0
