"""Nothing a kernel can write runs outside the sandbox, decides a mount, or reaches another
session: hostile kernels and planted files against every server-side run (real kernels,
real bubblewrap, real uv installs from local wheels)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from python_mcp_server.settings import Settings
from tests.helpers import call, run
from tests.sandbox_support import require_bwrap
from tests.wheels import build_test_wheels

SECRET = "server-secret-8e2d41"
#: What planted code does wherever it runs: write where it ran, with its environment, to
#: a host folder (hidden from sandboxed runs) and to the environment's folder (writable
#: only to an install into that environment).
PAYLOAD = """\
import json as _j, os as _o, sys as _s
_d = _j.dumps({{"how": {how!r}, "uid": _o.getuid(), "env": dict(_o.environ),
    "argv": _s.argv[:3], "state": _o.path.exists({history!r})}})
for _f in ({host!r}, {env_root!r}):
    _n = "ran-%d-%s.json" % (_o.getpid(), _o.urandom(4).hex())
    try:
        with open(_o.path.join(_f, _n), "w") as _h:
            _h.write(_d)
    except OSError:
        pass
"""


@pytest.fixture(autouse=True)
def _needs_bwrap() -> None:
    require_bwrap()


@pytest.fixture(scope="module")
def wheel_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_test_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def settings_overrides(
    wheel_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    # The server's own environment holds secrets that no planted code may see.
    monkeypatch.setenv("PMCP_SERVER_SECRET", SECRET)
    monkeypatch.setenv("MCP_GATEWAY_TOKEN", SECRET)
    return {**wheel_settings, "sandbox": "bwrap", "auth_token": SECRET, "auto_install": True}


def plant(what: str, env_root: Path, host: Path, history: Path) -> None:
    """What a kernel that could write the environment would leave there."""
    site = next((env_root / "lib").glob("python3*/site-packages"))
    payload = PAYLOAD.format(how=what, host=str(host), env_root=str(env_root), history=str(history))
    if what == "pth":
        (site / "zz_planted.pth").write_text(f"import os; exec({payload!r})\n")
        return
    if what == "sitecustomize":
        (site / "sitecustomize.py").write_text(payload)
        return
    python = env_root / "bin" / "python"
    real = os.path.realpath(python)
    python.unlink()
    python.write_text(
        "#!/bin/sh\n"
        f"env > {host}/ran-python-$$.txt 2>/dev/null\n"
        f"env > {env_root}/ran-python-$$.txt 2>/dev/null\n"
        f'exec {real} "$@"\n'
    )
    python.chmod(0o755)


def markers(folder: Path, pattern: str = "ran-*") -> list[str]:
    return [p.read_text() for p in sorted(folder.glob(pattern))]


async def call_any(client: Client[Any], tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool call whose outcome does not matter here (a replaced interpreter breaks
    installs: that is fine, running it with the server's rights is not)."""
    result = await client.call_tool(tool, arguments, raise_on_error=False)
    return {} if result.is_error else dict(result.structured_content or {})


@pytest.mark.parametrize("what", ["pth", "sitecustomize", "python"])
async def test_planted_code_never_runs_outside_the_sandbox_nor_sees_a_secret(
    client: Client[Any], services: Services, settings: Settings, tmp_path: Path, what: str
) -> None:
    await call(client, "create_venv", venv_name="ds")
    await call(client, "create_session", session_id="evil", venv_name="ds")
    env_root = services.environments.root("ds")
    # The kernel itself cannot change its environment: sessions share it.
    tried = await run(
        client,
        "import os, sys, glob\n"
        "site = glob.glob(sys.prefix + '/lib/python3*/site-packages')[0]\n"
        "for path in (site + '/zz.pth', sys.prefix + '/bin/python', sys.prefix + '/pyvenv.cfg'):\n"
        "    try:\n"
        "        open(path, 'a').close()\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', exc.errno in (30, 26, 13))",
        # EROFS, ETXTBSY (the binary), EACCES (a root server's kernel user owns nothing)
        session_id="evil",
    )
    assert tried["stdout"] == "refused True\n" * 3, tried
    # Planted anyway (as under --sandbox none, or by an older server's writable mount).
    host = tmp_path / "host-markers"
    host.mkdir()
    history = settings.state_path / "history.sqlite3"
    plant(what, env_root, host, history)

    health = await call(client, "health_check", venv_name="ds")
    assert health["environment"]["ok"] is True, health
    installed = await call_any(client, "install_dependencies", packages="pmcp-tiny", venv_name="ds")
    await call_any(client, "list_packages", venv_name="ds")
    await call_any(client, "uninstall_packages", packages="pmcp-tiny", venv_name="ds")
    await call_any(client, "install_dependencies", packages="pmcp-other", session_id="evil")
    services.environments.changed("ds")  # the auto-install probe asks the interpreter again
    auto = await run(client, "import pmcp_uses_tiny\nprint('ok')", session_id="evil")
    assert "pmcp-uses-tiny" in auto["dependencies_info"]["requested"], auto
    if what != "python":  # a replaced interpreter misleads the installer: installs fail
        assert installed["packages"][0]["status"] == "installed"
        assert auto["stdout"] == "ok\n", auto

    assert markers(host) == []  # nothing ran with the server's view of the host
    seen = markers(env_root)
    assert seen, "the planted code never ran at all: this test would prove nothing"
    for text in seen:
        assert SECRET not in text
        assert "PMCP_SERVER_SECRET" not in text
        assert "MCP_GATEWAY_TOKEN" not in text
    reports = [json.loads(t) for t in seen if t.startswith("{")]
    assert all(r["how"] == what and r["state"] is False for r in reports)  # no state folder


async def test_pyvenv_cfg_decides_no_mount(
    client: Client[Any], services: Services, settings: Settings
) -> None:
    await call(client, "create_venv", venv_name="cfg")
    root = services.environments.root("cfg")
    config = root / "pyvenv.cfg"
    kept = config.read_text()
    for home in ("/", str(settings.state_path), str(settings.state_path / "venvs")):
        config.write_text(f"{kept}home = {home}\n")
        name = f"s{abs(hash(home)) % 10_000}"
        await call(client, "create_session", session_id=name, venv_name="cfg")
        looked = await run(
            client,
            "import os\n"
            f"state = {str(settings.state_path)!r}\n"
            "print(os.path.exists(state + '/history.sqlite3'), "
            "os.path.exists(state + '/run'), sorted(os.listdir(state)))",
            session_id=name,
        )
        assert looked["stdout"] == "False False ['venvs']\n", (home, looked)
        await call(client, "delete_session", session_id=name)


async def test_a_pth_from_one_session_never_runs_in_another(
    client: Client[Any], services: Services, workspace: Path
) -> None:
    site = services.environments.target("default").site_packages
    mark = "import os; open(os.path.join({ws!r}, '{name}-' + str(os.getpid())), 'w')\n"
    pth = mark.format(ws=str(workspace), name="pth-ran")
    custom = mark.format(ws=str(workspace), name="sitecustomize-ran")
    planted = (
        "import os\n"
        f"try:\n    open({str(site / 'evil.pth')!r}, 'w').write({pth!r})\n"
        "except OSError as exc:\n    print('shared', exc.errno)\n"
        "own = os.environ['PMCP_SESSION_PACKAGES']\n"
        f"open(os.path.join(own, 'evil.pth'), 'w').write({pth!r})\n"
        f"open(os.path.join(own, 'sitecustomize.py'), 'w').write({custom!r})\n"
        "print(own)"
    )
    a = await run(client, planted)
    shared, own = a["stdout"].splitlines()
    assert shared == "shared 30", a  # EROFS: the shared environment is read-only
    await call(client, "create_session", session_id="b")
    b = await run(
        client,
        "import os, sys\n"
        "print(os.environ['PMCP_SESSION_PACKAGES'] != " + repr(own) + ", "
        "getattr(sys.modules.get('sitecustomize'), '__file__', None))",
        session_id="b",
    )
    assert b["stdout"] == "True None\n", b
    await call(client, "restart_kernel")  # A's next kernel: its own folder, on PYTHONPATH
    again = await run(client, "import os; print(os.getpid())")
    assert again["status"] == "ok"
    assert markers(site, "evil.pth") == []
    assert markers(workspace, "pth-ran-*") == []  # a .pth there is never processed
    # Its own sitecustomize.py is its own business: it may run in A's new kernel (unless
    # that kernel had started, pooled, before the file was written), never anywhere else.
    ran = {name for name in os.listdir(workspace) if name.startswith("sitecustomize-ran-")}
    assert ran <= {f"sitecustomize-ran-{again['stdout'].strip()}"}, ran
