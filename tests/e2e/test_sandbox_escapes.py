"""Escape attempts against the real command with MCP_SANDBOX=bwrap and the default network.

One server serves the whole module (started with an auth token, a fake home holding a
secret, small limits, the default ``allowlist`` network whose package index is a made-up
name pinned to a loopback server of this module). Every case must fail safely, and the
server must keep serving. Each test names the class of issue 11 it holds.

The module runs three times: a root server whose kernels bubblewrap starts, a root
server whose kernels are forked from a sandboxed template, and a server that is not root
(``tests/nonroot_support.py``: a uid of no user, its home and workspace its own) whose
kernels are forked too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest
from fastmcp import Client

from tests.e2e.conftest import COMMAND, LaunchedServer, assert_gone
from tests.helpers import free_port, run, tool_error
from tests.nonroot_support import (
    SERVER_UID,
    as_server_user,
    require_non_root_server,
    user_folder,
)
from tests.sandbox_support import (
    fork_variables,
    loopback_http,
    proxy_probe,
    require_bwrap,
)

TOKEN = "escape-suite-token-6f1c2a9e"
FAKE_INDEX = "index.escape-suite.example"
SECRET = "the-home-secret-4d7b"
#: Parameters of the server under attack.
MAX_PROCESSES = 64
MAX_FILE_MB = 1
SPILL_CAP = 256 * 1024


class Target:
    """The server under attack, and the host paths it must protect."""

    def __init__(self, server: LaunchedServer, home: Path, forked: bool) -> None:
        self.server = server
        self.home = home
        #: Whether its kernels are forked from a sandboxed template (else bwrap-started).
        self.forked = forked
        self.workspace = server.workspace
        self.state = server.workspace / ".state"
        self.history = self.state / "history.sqlite3"


@pytest.fixture(scope="module")
def index_port() -> Iterator[int]:
    """A loopback HTTP server standing in for the package index."""
    with loopback_http("index page") as port:
        yield port


@pytest.fixture(
    scope="module",
    params=["bwrap-started", "forked", "non-root"],
)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, index_port: int
) -> Iterator[Target]:
    """The server under attack: a root server with kernels started by bubblewrap, one
    with kernels forked from a sandboxed template (the default for kernels with a
    preload), and a server that is not root, whose kernels are forked too."""
    require_bwrap()
    non_root = request.param == "non-root"
    if non_root:
        require_non_root_server()
    forked = request.param != "bwrap-started"
    root = tmp_path_factory.mktemp("escape")
    home = user_folder("escape-home-") if non_root else root / "home"
    home.mkdir(exist_ok=True)
    (home / "secret.txt").write_text(SECRET)
    workspace = user_folder("escape-ws-") if non_root else root / "ws"
    workspace.mkdir(exist_ok=True)
    if non_root:
        os.chown(home / "secret.txt", *os.stat(home)[4:6])
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "MCP_SANDBOX": "bwrap",
        "MCP_PIP_INDEX_URL": f"http://{FAKE_INDEX}:{index_port}/simple",
        "MCP_KERNEL_NETWORK_HOSTS": f"{FAKE_INDEX}=127.0.0.1",
        # A server that is not root has no memory cgroup: its address-space limit is the
        # memory limit less the tmpfs share (192 MiB of 256), too little for a kernel's
        # threads to start every time, forked or started by bubblewrap.
        "MCP_MAX_MEMORY_MB": "384" if non_root else "256",
        "MCP_MAX_KERNEL_FILE_MB": str(MAX_FILE_MB),
        "MCP_MAX_KERNEL_PROCESSES": str(MAX_PROCESSES),
        "MCP_SESSION_IDLE_TIMEOUT": "0",
        "MCP_EXECUTION_TIMEOUT": "60",
        # The preloaded data stack does not start under a 256 MiB address-space limit
        # (thread stacks fail with EAGAIN): a known problem of the preload, not of this suite.
        "MCP_KERNEL_PRELOAD": "none",
        "MCP_MAX_SPILL_BYTES_PER_CALL": str(SPILL_CAP),
        # Inside the workspace (not the default), the hardest place to keep it hidden.
        "MCP_STATE_DIR": str(workspace / ".state"),
    }
    env = fork_variables(env, forked)
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        command = [COMMAND, "--port", str(port), "--workspace-dir", str(workspace)]
        command += ["--auth-token", TOKEN]
        process = subprocess.Popen(
            as_server_user(command) if non_root else command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = LaunchedServer(process=process, port=port, workspace=workspace, log_path=log_path)
    try:
        server.wait_ready()
        if non_root:
            assert psutil.Process(process.pid).uids().real == SERVER_UID
        yield Target(server, home, forked)
    finally:
        code = server.stop()
        if non_root:  # its own folders, outside the test's tmp
            shutil.rmtree(home)
            shutil.rmtree(workspace)
        assert code == 0, f"server exited with {code}:\n{server.log()}"
        assert_gone(server.kernels_seen)


@pytest.fixture
async def attacker(target: Target) -> AsyncIterator[Client[Any]]:
    """A client of the sandboxed server; after the attack, the server must still serve."""
    async with Client(target.server.mcp_url, auth=TOKEN, timeout=120) as client:
        yield client
        alive = await run(client, "6 * 7")
        assert alive["result"] == "42", alive
        if target.forked:  # the suite held against kernels forked from a sandboxed template
            origin = await run(client, "'\"sandboxed\": true' in open('/proc/self/cmdline').read()")
            assert origin["result"] == "True", target.server.log()
    assert target.server.process.poll() is None, target.server.log()


async def test_cannot_write_the_system(attacker: Client[Any]) -> None:
    result = await run(
        attacker,
        "import errno\n"
        "for path in ('/etc/pmcp_escape', '/usr/lib/pmcp_escape', '/pmcp_escape'):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "    except OSError as e:\n"
        "        print(errno.errorcode[e.errno])",
    )
    assert result["stdout"] == "EROFS\nEROFS\nEROFS\n"
    assert not await anyio.Path("/etc/pmcp_escape").exists()


async def test_cannot_read_or_write_the_home_folder(attacker: Client[Any], target: Target) -> None:
    result = await run(
        attacker,
        "import os\n"
        f"print(repr(os.path.expanduser('~') == {str(target.home)!r}))\n"
        f"print(sorted(os.listdir({str(target.home)!r})))\n"
        "open(os.path.expanduser('~/planted.txt'), 'w').write('x')\n"
        f"open({str(target.home / 'secret.txt')!r}).read()",
    )
    assert result["stdout"].startswith("True\n")
    assert SECRET not in str(result)
    assert result["error"]["ename"] == "FileNotFoundError"
    assert not (target.home / "planted.txt").exists()
    assert (target.home / "secret.txt").read_text() == SECRET


#: Kernel code reporting its own connection file (it must stay reachable: the kernel's
#: channels depend on it) and its own session package folder.
OWN_FOLDERS = (
    "import os, sys, json\n"
    "from ipykernel.connect import get_connection_file\n"
    "own = get_connection_file()\n"
    "with open(own) as f:\n"
    "    assert json.load(f)['key']\n"
    "packages = [p for p in sys.path if '.session-packages' in p]\n"
)

#: Kernel code: which of ``paths`` it can stat, and every file and folder it sees under
#: ``state``, as JSON.
PROBE_STATE = OWN_FOLDERS + (
    "reached = []\n"
    "for path in {paths!r}:\n"
    "    try:\n"
    "        os.stat(path)\n"
    "    except OSError:\n"
    "        continue\n"
    "    reached.append(path)\n"
    "seen = []\n"
    "for folder, _, files in os.walk({state!r}):\n"
    "    seen += [folder] + [os.path.join(folder, name) for name in files]\n"
    "print(json.dumps({{'own': own, 'packages': packages, 'reached': reached, 'seen': seen}}))"
)


def allowed_in_view(path: Path, state: Path, own_runtime: Path, own_packages: Path) -> bool:
    """What a kernel may see of the state folder: the folder itself, the environments
    folder with its (read-only) environments but no other session's package folder, its
    own runtime folder (connection file, sockets) and the folders on the way to those.

    The runtime folder is ``<state>/run/k<name>``, or ``/tmp/pmcp-<uid>-<pid>/k<name>``
    when the state path is too long for a socket address (``short_runtime_dir``; under
    pytest-xdist, for one): so ``<state>/run`` may or may not be in view, both are fine."""
    venvs = state / "venvs"
    sessions = venvs / ".session-packages"
    on_the_way = {p for own in (own_runtime, own_packages) for p in own.parents}
    if path in on_the_way or path == state:
        return True
    if path == own_runtime or own_runtime in path.parents:
        return True
    if path == own_packages or own_packages in path.parents:
        return True
    return (venvs in path.parents or path == venvs) and sessions not in path.parents


async def test_cannot_see_the_state_folder_or_the_history(
    attacker: Client[Any], target: Target
) -> None:
    await attacker.call_tool("create_session", {"session_id": "victim"})
    try:
        # Another session's kernel is alive: its connection file, sockets, egress socket
        # and package folder are in the state folder on the host right now.
        report = OWN_FOLDERS + "print(json.dumps([own, packages]))"
        theirs = json.loads((await run(attacker, report, session_id="victim"))["stdout"])
        their_connection, [their_packages] = Path(theirs[0]), theirs[1]
        assert await anyio.Path(their_connection).is_file()
        await run(attacker, "'something for the history'")
        assert target.history.is_file()
        assert (target.state / "logs").is_dir()
        # Every host file of the state folder outside the environments, and every file of
        # the session package folders (the attacker's own sorted out below).
        sessions = target.state / "venvs" / ".session-packages"
        host = [p for p in target.state.rglob("*") if (target.state / "venvs") not in p.parents]
        host += list(sessions.rglob("*"))
        host += [their_connection, Path(their_packages)]
        forbidden = sorted({str(p) for p in host})
        code = PROBE_STATE.format(paths=forbidden, state=str(target.state))
        result = await run(attacker, code, session_id="default")
    finally:
        await attacker.call_tool("delete_session", {"session_id": "victim"})
    assert result["status"] == "ok", result
    view = json.loads(result["stdout"])
    own_runtime = Path(view["own"]).parent
    [own_packages] = [Path(p).parent for p in view["packages"]]  # <folder>/site
    assert own_runtime != their_connection.parent
    # Nothing of the server's or of another session is reachable...
    allowed = [
        p
        for p in view["reached"]
        if allowed_in_view(Path(p), target.state, own_runtime, own_packages)
    ]
    assert view["reached"] == allowed
    for secret in (target.history, target.state / "logs", their_connection, Path(their_packages)):
        assert str(secret) not in view["reached"]
    # ...and what it sees of the state folder is a subset of what it may see.
    assert view["seen"], "the walk saw nothing: the probe did not run"
    outside = [
        p
        for p in view["seen"]
        if not allowed_in_view(Path(p), target.state, own_runtime, own_packages)
    ]
    assert outside == []
    assert not any(Path(p).name.startswith("egress-") for p in view["seen"])


async def test_cannot_find_the_token(attacker: Client[Any], target: Target) -> None:
    result = await run(
        attacker,
        "import os, glob\n"
        f"token = {TOKEN!r}.encode()\n"
        "found = [k for k, v in os.environb.items() if token in v]\n"
        "for path in glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline'):\n"
        "    try:\n"
        "        if token in open(path, 'rb').read():\n"
        "            found.append(path)\n"
        "    except OSError:\n"
        "        pass\n"
        f"print(found, os.path.exists('/proc/{target.server.process.pid}'))",
    )
    assert result["stdout"] == "[] False\n"


async def test_host_loopback_and_the_internet_are_unreachable(
    attacker: Client[Any], target: Target
) -> None:
    """Kernel network: no route to the host's loopback (this server included) or out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        host_port = listener.getsockname()[1]
        result = await run(
            attacker,
            "import socket\n"
            f"for port in ({host_port}, {target.server.port}):\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', port), 3)\n"
            "        print('connected')\n"
            "    except OSError as e:\n"
            "        print(type(e).__name__)\n"
            "try:\n"
            "    socket.create_connection(('1.1.1.1', 80), 3)\n"
            "except OSError as e:\n"
            "    print(type(e).__name__)",
        )
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result["stdout"] == ("ConnectionRefusedError\nConnectionRefusedError\nOSError\n"), (
        result
    )  # the last: network unreachable, no route out of the namespace


async def test_cannot_kill_the_server(attacker: Client[Any], target: Target) -> None:
    pid = target.server.process.pid
    result = await run(
        attacker,
        "import os, signal\n"
        "try:\n"
        f"    os.kill({pid}, signal.SIGKILL)\n"
        "except ProcessLookupError:\n"
        "    print('no such process')\n"
        "try:\n"
        "    os.kill(1, signal.SIGKILL)  # the sandbox's own init: ignored\n"
        "except PermissionError:\n"
        "    pass  # under a root server it is root's, and the kernel user's signal fails\n"
        "pids = {int(p) for p in os.listdir('/proc') if p.isdigit()} - {1, os.getpid()}\n"
        "# only the sandbox's init, the kernel and its own network forwarder (a forked\n"
        "# kernel has none: the server serves its port) exist\n"
        "parents = [open(f'/proc/{p}/stat').read().split()[3] for p in pids]\n"
        f"print(parents == ([] if {target.forked} else [str(os.getpid())]))",
    )
    assert result["stdout"] == "no such process\nTrue\n", result


async def test_fork_bomb_is_bounded(attacker: Client[Any]) -> None:
    result = await run(
        attacker,
        "import os, time\n"
        "children = []\n"
        "try:\n"
        "    for _ in range(2000):  # bounded even if the limit failed\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children.append(pid)\n"
        "except OSError as e:\n"
        "    print('stopped:', type(e).__name__)\n"
        "for pid in children:\n"
        "    os.kill(pid, 9)\n"
        "    os.waitpid(pid, 0)\n"
        "len(children)",
    )
    assert result["stdout"] == "stopped: BlockingIOError\n", result
    assert 0 < int(result["result"]) < MAX_PROCESSES


async def test_memory_bomb_is_an_error_and_the_session_lives(attacker: Client[Any]) -> None:
    await run(attacker, "before = 'kept'")
    bomb = "hog = []\nwhile True:\n    hog.append(bytearray(8 * 1024 * 1024))"
    result = await run(attacker, bomb)
    assert result["status"] == "error"
    assert result["error"]["code"] == "MEMORY_LIMIT_EXCEEDED"
    after = await run(attacker, "del hog\nbefore")
    assert after["result"] == "'kept'"


async def test_disk_filling_is_cut_at_the_file_size_limit(
    attacker: Client[Any], target: Target
) -> None:
    result = await run(
        attacker,
        "with open('filler.bin', 'wb') as f:\n"
        "    for _ in range(64):\n"
        "        f.write(b'0' * 1024 * 1024)",
    )
    assert result["error"]["ename"] == "OSError"
    assert "File too large" in result["error"]["evalue"]
    assert (target.workspace / "filler.bin").stat().st_size <= MAX_FILE_MB * 1024 * 1024


async def test_symlinks_lead_nowhere(attacker: Client[Any], target: Target) -> None:
    targets = {
        "db_link": target.history,
        "home_link": target.home / "secret.txt",
        "state_link": target.state,
    }
    links = "\n".join(f"os.symlink({str(p)!r}, {name!r})" for name, p in targets.items())
    result = await run(
        attacker,
        f"import os, json\n{links}\n"
        "for name in ('db_link', 'home_link'):\n"
        "    try:\n"
        "        open(name, 'rb').read()\n"
        "    except OSError as e:\n"
        "        print(name, type(e).__name__)\n"
        "print(json.dumps(os.listdir('state_link')))",
    )
    first, second, listed = result["stdout"].splitlines()
    assert (first, second) == ("db_link FileNotFoundError", "home_link FileNotFoundError")
    # The link shows the kernel's own view: at most its runtime folder's parent and the
    # environments, never the history, logs, token or kernel records.
    assert set(json.loads(listed)) <= {"run", "venvs"}
    # The server's own file routes and tools refuse to follow them out of the workspace.
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=target.server.url, headers=headers) as http:
        for name in targets:
            response = await http.get(f"/files/download/{name}")
            assert response.status_code in (403, 404), (name, response.text)
            assert SECRET.encode() not in response.content
            assert b"SQLite format 3" not in response.content
    read = await attacker.call_tool("read_file", {"path": "home_link"}, raise_on_error=False)
    assert read.is_error
    assert SECRET not in str(read.content)


async def test_hardlinks_cannot_reach_outside(attacker: Client[Any], target: Target) -> None:
    result = await run(
        attacker,
        "import os, errno\n"
        f"for source, name in (({str(target.history)!r}, 'db_hard'), ('/etc/passwd', 'pw_hard')):\n"
        "    try:\n"
        "        os.link(source, name)\n"
        "        print(name, 'linked')\n"
        "    except OSError as e:\n"
        "        print(name, errno.errorcode[e.errno])",
    )
    assert result["stdout"] == "db_hard ENOENT\npw_hard EXDEV\n"
    assert not (target.workspace / "db_hard").exists()
    assert not (target.workspace / "pw_hard").exists()


#: An exception class name carrying a newline, a forged log line and a forged JSON record.
FORGED_NAME = (
    "Boom\\n2026-01-01 00:00:00,000 INFO python_mcp_server.audit: "
    '{"event": "install", "packages": "forged-by-kernel"}\\r\\u2028'
)


async def test_audit_log_cannot_be_forged(attacker: Client[Any], target: Target) -> None:
    """11.7: kernel-chosen text lands escaped inside one genuine audit record."""
    result = await run(
        attacker,
        f"Forged = type({FORGED_NAME!r}.encode().decode('unicode_escape'), (Exception,), {{}})\n"
        "raise Forged('x')",
    )
    name = result["error"]["ename"]
    assert "\n" in name
    assert "forged-by-kernel" in name
    lines = target.server.log().splitlines()
    marked = [line for line in lines if "forged-by-kernel" in line]
    audit_lines = [line for line in lines if " python_mcp_server.audit: " in line]
    assert marked, "the execution was not audited"
    # Every line mentioning the forged text is a genuine, indented continuation or an audit
    # record whose JSON holds the whole name as one string; none starts a record of its own.
    records = [json.loads(line.split(" python_mcp_server.audit: ", 1)[1]) for line in audit_lines]
    mine = [r for r in records if r.get("execution_id") == result["execution_id"]]
    assert len(mine) == 1
    assert mine[0]["error"] == name
    assert not [r for r in records if r.get("packages") == "forged-by-kernel"]
    for line in marked:
        assert line.startswith("    ") or line in audit_lines, line


PROXY_PROBE = proxy_probe("/simple/")


async def test_egress_proxy_lets_only_the_index_through(
    attacker: Client[Any], index_port: int
) -> None:
    """Kernel network (default allowlist): the index yes; metadata, loopback, others no."""
    result = await run(
        attacker,
        PROXY_PROBE
        + f"print(connect('{FAKE_INDEX}:{index_port}'))\n"
        + "print(connect('169.254.169.254:80'))\n"
        + "print(connect('[fd00:ec2::254]:80'))\n"
        + f"print(connect('localhost:{index_port}'))\n"
        + "print(connect('example.org:443'))\n"
        + "try:\n"
        + "    socket.create_connection(('169.254.169.254', 80), 5)\n"
        + "except OSError as e:\n"
        + "    print(type(e).__name__, e.errno)",
    )
    lines = result["stdout"].splitlines()
    assert lines[0] == "HTTP/1.1 200 Connection established | index page /simple/", result
    assert lines[1:5] == ["HTTP/1.1 403 Forbidden"] * 4, result
    assert lines[5] == "OSError 101"  # unreachable at once: no route, not a timeout


async def test_sessions_may_narrow_the_network_never_widen_it(attacker: Client[Any]) -> None:
    """Kernel network: ``allow`` is refused with a code; ``deny`` leaves no network at all."""
    text = await tool_error(attacker, "create_session", {"session_id": "wide", "network": "allow"})
    assert text.startswith("NETWORK_POLICY_REFUSED:")
    text = await tool_error(
        attacker, "create_session", {"session_id": "wide2", "network_domains": ["example.org"]}
    )
    assert text.startswith("NETWORK_POLICY_REFUSED:")
    await attacker.call_tool("create_session", {"session_id": "offline", "network": "deny"})
    try:
        result = await run(
            attacker,
            "import socket\n"
            "for address in (('127.0.0.1', 3128), ('169.254.169.254', 80), ('1.1.1.1', 443)):\n"
            "    try:\n"
            "        socket.create_connection(address, 5)\n"
            "    except OSError as e:\n"
            "        print(type(e).__name__, e.errno)\n"
            "import os\n"
            "print(os.path.exists('/run/python-mcp-server/egress.sock'))",
            session_id="offline",
        )
        assert result["stdout"] == (
            "ConnectionRefusedError 111\nOSError 101\nOSError 101\nFalse\n"
        ), result
    finally:
        await attacker.call_tool("delete_session", {"session_id": "offline"})


PLANT = """
import os, sys, site, errno
marker = {marker!r}
payload = f"import os; open({{marker!r}} + '-%d' % os.getpid(), 'w').write('ran')\\n"
planted, refused = [], []
for folder in dict.fromkeys([*sys.path, *site.getsitepackages()]):
    if not folder or not os.path.isdir(folder) or folder.startswith('/usr'):
        continue
    for name, text in (('sitecustomize.py', payload), ('zz_pmcp.pth', payload)):
        try:
            with open(os.path.join(folder, name), 'w') as f:
                f.write(text)
            planted.append(folder)
        except OSError as e:
            refused.append(errno.errorcode[e.errno])
env = os.path.dirname(os.path.dirname(sys.executable))
for name in ('pyvenv.cfg', 'bin/python'):
    try:
        open(os.path.join(env, name), 'a').write('home = /\\n')
    except OSError as e:
        refused.append(errno.errorcode[e.errno])
print(len(set(planted)), sorted(set(refused)))
"""


async def test_planted_startup_files_never_run_outside_the_sandbox(
    attacker: Client[Any], target: Target
) -> None:
    """Classes 1-3: the environment is read-only; what a session plants in its own package
    folder runs only in its own sandboxed kernels, never in server-side runs (health,
    listings, installs) nor in another session's kernel."""
    marker = str(target.home / "planted-code-ran")
    result = await run(attacker, PLANT.format(marker=marker))
    planted, refused = result["stdout"].split(" ", 1)
    assert int(planted) >= 1, result  # its own package folder is writable...
    assert "EROFS" in refused, result  # ...the shared environment and pyvenv.cfg are not
    # Everything the server runs against that environment and that session's packages.
    report = await attacker.call_tool("health_check", {"venv_name": "default"})
    assert not report.is_error, report
    listed = await attacker.call_tool("list_packages", {}, raise_on_error=False)
    assert not listed.is_error, listed
    await attacker.call_tool("create_session", {"session_id": "neighbour"})
    try:
        other = await run(attacker, "import sys\nsorted(sys.modules)[:1]", session_id="neighbour")
        assert other["status"] == "ok", other
    finally:
        await attacker.call_tool("delete_session", {"session_id": "neighbour"})
    ran = sorted(p.name for p in target.home.iterdir() if p.name.startswith("planted-code-ran"))
    assert ran == [], ran  # the host home is reachable only to code running unsandboxed
    assert (target.home / "secret.txt").read_text() == SECRET


async def test_server_writes_never_follow_a_planted_link(
    attacker: Client[Any], target: Target
) -> None:
    """Classes 4 and 6: an ``outputs`` link to a host folder gets no spill file, no image;
    spills stay under the per-call cap."""
    victim = target.home / "victim"
    victim.mkdir(exist_ok=True)
    outputs = target.workspace / "outputs"
    if outputs.is_dir() and not outputs.is_symlink():  # make room for the kernel's link
        outputs.rename(outputs.with_name("outputs.before"))
    result = await run(
        attacker,
        f"import os\nos.symlink({str(victim)!r}, 'outputs')\nprint('x' * 400_000)\n",
    )
    assert result["status"] in ("ok", "error"), result
    assert list(victim.iterdir()) == [], list(victim.iterdir())
    (target.workspace / "outputs").unlink()
    big = await run(attacker, "for _ in range(64):\n    print('y' * 65536)")
    assert big["status"] == "ok", big
    spilled = sum(
        p.stat().st_size for p in (target.workspace / "outputs").rglob("*") if p.is_file()
    )
    assert spilled <= SPILL_CAP + 64 * 1024, spilled
