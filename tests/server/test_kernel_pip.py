"""``%pip``, ``!pip`` and ``!python`` inside sandboxed kernels: the session's own packages.

Real kernels in bubblewrap with the network denied, installing hand-built local wheels
(the find-links folder is the one place the settings let kernels read packages from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from fastmcp import Client

from tests.helpers import call, run
from tests.sandbox_support import require_bwrap
from tests.wheels import build_test_wheels

ESCAPE = "\x1b["


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


@pytest.fixture(scope="module")
def wheel_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def settings_overrides(wheel_settings: dict[str, Any]) -> dict[str, Any]:
    return {**wheel_settings, "sandbox": "bwrap", "kernel_network": "deny"}


def no_colour(result: dict[str, Any]) -> None:
    text = f"{result.get('stdout')}{result.get('stderr')}{result.get('error')}"
    assert ESCAPE not in text, text


async def test_pip_magic_and_shell_install_into_the_session_only(
    client: Client[Any], workspace: Path
) -> None:
    await call(client, "create_session", session_id="a")
    await call(client, "create_session", session_id="b")
    magic = await run(client, "%pip install pmcp-tiny==1.0", session_id="a")
    assert magic["status"] == "ok", magic
    assert "pmcp-tiny==1.0" in magic["stdout"] + magic["stderr"], magic
    no_colour(magic)
    imported = await run(client, "import pmcp_tiny\npmcp_tiny.VERSION", session_id="a")
    assert imported["result"] == "'1.0'", imported
    shell = await run(client, "!pip install pmcp-other", session_id="a")
    no_colour(shell)
    other = await run(client, "import pmcp_other\npmcp_other.VERSION", session_id="a")
    assert other["result"] == "'1.0'", (shell, other)
    listed = await run(client, "!pip list", session_id="a")
    no_colour(listed)
    python = await run(client, "!python -c 'print(1)'", session_id="a")
    assert python["stdout"].strip() == "1", python  # (shell escapes run in a pty: \r\n)
    where = await run(client, "import sys; print(sys.prefix)", session_id="a")
    shell_python = await run(client, "!python -c 'import sys; print(sys.prefix)'", session_id="a")
    assert shell_python["stdout"].strip() == where["stdout"].strip()  # its own environment

    script = workspace / "scripts" / "uses_tiny.py"
    script.write_text("import pmcp_tiny\nprint(pmcp_tiny.VERSION)\n")
    for session, expected in (("a", "1.0\n"), ("b", "")):
        ran = await call(client, "run_script", path="scripts/uses_tiny.py", session_id=session)
        assert ran["stdout"] == expected, ran  # a subprocess of the session sees its packages

    elsewhere = await run(client, "import pmcp_tiny", session_id="b")
    assert elsewhere["error"]["ename"] == "ModuleNotFoundError"
    missing = await run(client, "%pip install pmcp-not-there", session_id="b")
    no_colour(missing)
    assert "pmcp-not-there" in missing["stdout"] + missing["stderr"]


async def test_session_packages_survive_a_restart_and_go_with_the_session(
    client: Client[Any],
) -> None:
    await call(client, "create_session", session_id="a")
    await run(client, "%pip install pmcp-tiny==2.0", session_id="a")
    folder = await run(
        client, "import os; print(os.environ['PMCP_SESSION_PACKAGES'])", session_id="a"
    )
    path = anyio.Path(folder["stdout"].strip())
    assert await (path / "pmcp_tiny").is_dir()
    await call(client, "restart_kernel", session_id="a")  # a pooled kernel takes over
    after = await run(client, "import pmcp_tiny\npmcp_tiny.VERSION", session_id="a")
    assert after["result"] == "'2.0'", after
    now = await run(client, "import os; print(os.environ['PMCP_SESSION_PACKAGES'])", session_id="a")
    current = Path(now["stdout"].strip()).parent
    await call(client, "delete_session", session_id="a")
    assert not await anyio.Path(current).exists()
    assert not await path.parent.exists()
