"""The kernel preload through the real protocol: ready data stack, and a preload that fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest
from fastmcp import Client

from python_mcp_server.core.sessions.preload import PreloadPolicy
from python_mcp_server.infra.kernels.template_launcher import TemplateLauncher
from python_mcp_server.server.app import build_server
from python_mcp_server.server.services import Services, build_services
from python_mcp_server.settings import Settings
from tests.helpers import call, run

FORKED = {"sandbox": "none", "kernel_preload": "auto", "kernel_pool_size": 1}
BROKEN = {"sandbox": "none", "kernel_preload": "numpy, no_such_module_pmcp", "kernel_pool_size": 0}

SEEN = (
    "import sys\n"
    "print(sorted(m for m in ('numpy', 'pandas', 'matplotlib.pyplot') if m in sys.modules))"
)


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_a_new_session_has_the_data_stack_imported_and_plots_inline(
    client: Client[Any], services: Services
) -> None:
    await call(client, "create_session", session_id="data")
    first = await run(client, SEEN, session_id="data")
    assert first["stdout"].strip() == "['matplotlib.pyplot', 'numpy', 'pandas']"
    assert first["message"] is None  # nothing went wrong, nothing to say
    plotted = await run(
        client,
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
        session_id="data",
    )
    assert [o["mime_type"] for o in plotted["outputs"]] == ["image/png"]
    variables = await call(client, "list_variables", session_id="data")
    assert not [v for v in variables["variables"] if v["name"] in ("np", "pd", "numpy")]
    health = await call(client, "health_check")
    assert health["preload"]["mode"] == "fork"
    assert health["preload"]["modules"][:2] == ["numpy", "pandas"]
    assert health["preload"]["problem"] is None
    assert services.launcher.preload_mode == "fork"


@pytest.mark.parametrize("settings_overrides", [BROKEN])
async def test_a_failing_preload_module_is_reported_once_and_sessions_still_start(
    client: Client[Any],
) -> None:
    await call(client, "create_session", session_id="one")
    first = await run(client, "print(1)", session_id="one")
    assert first["stdout"] == "1\n"
    assert "no_such_module_pmcp" in first["message"]
    second = await run(client, "print(2)", session_id="one")
    assert second["message"] is None  # told once per session
    health = await call(client, "health_check")
    assert health["status"] == "degraded"
    assert any("no_such_module_pmcp" in p for p in health["problems"])
    # Later kernels start plain, and their sessions are told why.
    await call(client, "create_session", session_id="two")
    plain = await run(client, "import sys; print('numpy' in sys.modules)", session_id="two")
    assert plain["stdout"] == "False\n"
    assert "without a preload" in plain["message"]


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_a_session_in_its_own_environment_gets_the_preload_from_its_own_template(
    client: Client[Any], services: Services
) -> None:
    await call(client, "create_venv", venv_name="ds")
    await call(client, "create_session", session_id="in-ds", venv_name="ds")
    seen = await run(client, SEEN + "\nprint(sys.prefix)", session_id="in-ds")
    lines = seen["stdout"].splitlines()
    assert lines[0] == "['matplotlib.pyplot', 'numpy', 'pandas']"
    assert lines[1].endswith("ds")  # the environment's own interpreter
    launcher = services.launcher
    assert isinstance(launcher, TemplateLauncher)
    # Forked by a template of its own, the environment's interpreter. (Not a count of the
    # templates: the default environment's may be ended and not yet started again.)
    listing = await call(client, "list_sessions")
    (kernel_pid,) = [s["kernel_pid"] for s in listing["sessions"] if s["session_id"] == "in-ds"]
    parent = psutil.Process(kernel_pid).ppid()
    (template,) = [t for t in launcher.templates if t.pid == parent]
    assert Path(psutil.Process(template.pid).cmdline()[0]).parent.parent.name == "ds"


FAILING = "def f(x):\n    return 1 / x\n\nf(0)"


async def _tracebacks(client: Client[Any]) -> list[list[str]]:
    """The tracebacks of a new session's first two errors, cell numbers left out."""
    await call(client, "create_session", session_id="errors")
    found = []
    for _ in range(2):
        error = (await run(client, FAILING, session_id="errors"))["error"]
        assert (error["ename"], error["evalue"]) == ("ZeroDivisionError", "division by zero")
        found.append([line.replace("In[2]", "In[1]") for line in error["traceback"]])
    return found


@pytest.mark.parametrize("settings_overrides", [FORKED])
async def test_a_forked_kernels_first_error_reads_as_a_started_kernels(
    client: Client[Any], workspace: Path
) -> None:
    """The template formatted a traceback before forking (``kernel_program.warm_tracebacks``:
    the first error of each kernel then costs a fifth of the CPU). What an agent reads of
    an error is the same, first or not, forked or not."""
    imported = await run(client, "import sys; 'stack_data' in sys.modules and 'x' not in dir()")
    assert imported["result"] == "True"  # set up in the template, before any error
    forked = await _tracebacks(client)
    plain = {**FORKED, "kernel_fork": False, "kernel_pool_size": 0, "workspace_dir": workspace}
    settings = Settings(**plain)
    async with Client(build_server(settings, build_services(settings))) as other:
        started = await _tracebacks(other)
    assert forked[0] == forked[1] == started[0] == started[1]
    assert any("----> 4 f(0)" in line for line in forked[0])
    assert any("----> 2     return 1 / x" in line for line in forked[0])


def test_a_launcher_that_cannot_preload_says_so_and_kernels_start_plain() -> None:
    policy = PreloadPolicy(("numpy",), mode="none")  # what a gateway launcher declares
    assert policy.modules_for(None) == ()
    assert policy.problem is not None
    assert "cannot preload" in policy.problem
    assert policy.status()["mode"] == "none"
