"""File tools, scripts, resources and new_files through the in-memory MCP client, against
real kernels. Refusals include links and special files made by code in the kernel."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastmcp import Client
from mcp.shared.exceptions import MCPError

from tests.helpers import call, run, tool_error, wait_gone

LIMIT = 64 * 1024
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, workspace: Path) -> dict[str, Any]:
    """Small caps for every test; parametrize indirectly to add settings. The state folder
    is put inside the workspace (not the default) to check that it stays hidden there."""
    return {
        "max_file_bytes": LIMIT,
        "max_output_chars": 1000,
        "state_dir": workspace / ".state",
        **getattr(request, "param", {}),
    }


NO_SANDBOX = pytest.mark.parametrize(
    "settings_overrides", [{"sandbox": "none"}], indirect=True, ids=["no-sandbox"]
)
EACH_SANDBOX = pytest.mark.parametrize(
    "settings_overrides",
    [{"sandbox": "none"}, {"sandbox": "auto"}],
    indirect=True,
    ids=["no-sandbox", "sandbox-auto"],
)


def assert_refused(text: str, code: str, *secrets: str) -> None:
    """A refusal with its code that leaks neither server paths nor the refused content."""
    assert text.startswith(f"{code}:"), text
    assert "/tmp" not in text, text
    assert "/work" not in text, text
    for secret in secrets:
        assert secret not in text


def read_text(path: Path) -> str:
    return path.read_text()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text("the-outside-secret")
    return path


async def test_write_list_read_delete_round_trip(client: Client[Any], workspace: Path) -> None:
    written = await call(client, "write_file", path="data/table.csv", content="a,b\n1,2\n")
    assert written == {"path": "data/table.csv", "size": 8, "created": True}
    assert (workspace / "data" / "table.csv").read_text() == "a,b\n1,2\n"
    listing = await call(client, "list_files", path=".", recursive=True)
    paths = {entry["path"]: entry for entry in listing["entries"]}
    assert paths["data/table.csv"]["type"] == "file"
    assert paths["data/table.csv"]["size"] == 8
    assert {"scripts", "outputs", "uploads", "data"} <= set(paths)
    assert not any(path.startswith(".state") for path in paths)
    assert "table.csv (8 B)" in listing["tree"]
    read = await call(client, "read_file", path="data/table.csv")
    assert (read["encoding"], read["content"], read["size"]) == ("utf-8", "a,b\n1,2\n", 8)
    assert (await call(client, "read_file", path="data/table.csv", offset=4, max_bytes=3))[
        "content"
    ] == "1,2"
    text = await tool_error(
        client, "write_file", {"path": "data/table.csv", "content": "x", "overwrite": False}
    )
    assert_refused(text, "FILE_EXISTS")
    deleted = await call(client, "delete_file", path="data", recursive=True)
    assert (deleted["files_deleted"], deleted["directories_deleted"]) == (1, 1)
    assert not (workspace / "data").exists()
    assert_refused(
        await tool_error(client, "read_file", {"path": "data/table.csv"}), "FILE_NOT_FOUND"
    )


async def test_binary_files_and_images(client: Client[Any]) -> None:
    encoded = base64.b64encode(PNG).decode()
    await call(client, "write_file", path="pics/dot.png", content=encoded, binary_base64=True)
    result = await client.call_tool("read_file", {"path": "pics/dot.png"})
    data = result.structured_content
    assert data is not None
    assert (data["encoding"], data["mime_type"]) == ("base64", "image/png")
    assert base64.b64decode(data["content"]) == PNG
    images = [block for block in result.content if block.type == "image"]
    assert len(images) == 1
    assert base64.b64decode(images[0].data) == PNG


async def test_workspace_info_uses_relative_paths(client: Client[Any], workspace: Path) -> None:
    await call(client, "write_file", path="scripts/s.py", content="print(1)\n")
    info = await call(client, "get_workspace_info")
    assert info["root"] == "."
    assert {f["path"]: f["files"] for f in info["folders"]} == {
        "scripts": 1,
        "outputs": 0,
        "uploads": 0,
    }
    assert info["files"] == 1
    assert info["max_file_bytes"] == LIMIT
    assert info["free_bytes"] > 0
    assert info["new_files_tracking"] == "inotify"
    assert str(workspace) not in json.dumps(info)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../outside.txt", "PATH_OUTSIDE_WORKSPACE"),
        ("/etc/passwd", "PATH_OUTSIDE_WORKSPACE"),
        (".state/kernels", "PATH_OUTSIDE_WORKSPACE"),
        ("data/\0.txt", "INVALID_INPUT"),
    ],
)
async def test_every_tool_refuses_paths_outside(client: Client[Any], path: str, code: str) -> None:
    calls = [
        ("read_file", {"path": path}),
        ("write_file", {"path": path, "content": "x"}),
        ("delete_file", {"path": path}),
        ("list_files", {"path": path}),
        ("run_script", {"path": path}),
    ]
    for tool, arguments in calls:
        assert_refused(await tool_error(client, tool, arguments), code)


@NO_SANDBOX  # a sandboxed kernel cannot even see the outside file; the resolver must not rely on it
async def test_links_made_in_the_kernel_are_refused(
    client: Client[Any], workspace: Path, secret: Path
) -> None:
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'passwd_link')\n"
        f"os.symlink({str(secret)!r}, 'secret_link')\n"
        f"os.symlink({str(secret.parent)!r}, 'dir_link')\n"
        f"os.link({str(secret)!r}, 'hard.txt')\n"
        "os.mkfifo('pipe')\n"
    )
    made = await run(client, code)
    assert made["status"] == "ok", made["error"]
    assert set(made["new_files"]) >= {"passwd_link", "secret_link", "hard.txt", "pipe"}
    passwd = read_text(Path("/etc/passwd"))[:20]
    for path in ("passwd_link", "secret_link", "dir_link/secret.txt", "hard.txt"):
        for tool in ("read_file", "run_script"):
            text = await tool_error(client, tool, {"path": path})
            assert_refused(text, "PATH_OUTSIDE_WORKSPACE", "the-outside-secret", passwd)
        with pytest.raises(MCPError, match="PATH_OUTSIDE_WORKSPACE") as excinfo:
            await client.read_resource(f"workspace://{path}")
        assert "the-outside-secret" not in str(excinfo.value)
    assert "hard links" in await tool_error(client, "read_file", {"path": "hard.txt"})
    assert_refused(await tool_error(client, "read_file", {"path": "pipe"}), "INVALID_INPUT")
    text = await tool_error(client, "write_file", {"path": "dir_link/new.txt", "content": "x"})
    assert_refused(text, "PATH_OUTSIDE_WORKSPACE")
    assert sorted(p.name for p in secret.parent.iterdir()) == ["secret.txt"]
    await call(client, "delete_file", path="hard.txt")
    await call(client, "delete_file", path="dir_link")
    assert read_text(secret) == "the-outside-secret"


async def test_size_caps_on_reads_and_writes(client: Client[Any], workspace: Path) -> None:
    made = await run(client, f"open('big.bin', 'wb').write(b'x' * {LIMIT + 1})")
    assert made["new_files"] == ["big.bin"]
    text = await tool_error(client, "read_file", {"path": "big.bin"})
    assert_refused(text, "FILE_TOO_LARGE")
    assert "MCP_MAX_FILE_BYTES" in text
    part = await call(client, "read_file", path="big.bin", offset=LIMIT - 9, max_bytes=100)
    assert (part["content"], part["truncated"]) == ("x" * 10, False)
    text = await tool_error(client, "write_file", {"path": "w.txt", "content": "y" * (LIMIT + 1)})
    assert_refused(text, "FILE_TOO_LARGE")
    assert not (workspace / "w.txt").exists()
    with pytest.raises(MCPError, match="FILE_TOO_LARGE"):
        await client.read_resource("workspace://big.bin")


async def test_new_files_and_resource_links_of_run_python_code(client: Client[Any]) -> None:
    await run(client, "open('before.txt', 'w').write('old')")
    code = (
        "import matplotlib.pyplot as plt\n"
        "open('outputs/result.csv', 'w').write('1,2')\n"
        "open('before.txt', 'a').write('+new')\n"
        "print('z' * 3000)\n"
        "plt.plot([1, 2]); plt.show()\n"
    )
    result = await client.call_tool("run_python_code", {"code": code})
    data = result.structured_content
    assert data is not None
    assert data["truncated"]
    image_path = next(o["path"] for o in data["outputs"] if o["mime_type"] == "image/png")
    assert set(data["new_files"]) == {
        "before.txt",
        "outputs/result.csv",
        image_path,
        data["stdout_path"],
    }
    links = {block.uri: block for block in result.content if block.type == "resource_link"}
    assert set(links) == {f"workspace://{image_path}", f"workspace://{data['stdout_path']}"}
    image = await client.read_resource(f"workspace://{image_path}")
    assert base64.b64decode(image[0].blob).startswith(b"\x89PNG")  # type: ignore[union-attr]
    full = await client.read_resource(f"workspace://{data['stdout_path']}")
    assert full[0].text == "z" * 3000 + "\n"  # type: ignore[union-attr]
    nothing = await run(client, "x = 1")
    assert nothing["new_files"] == []
    templates = await client.list_resource_templates()
    assert [t.uri_template for t in templates] == ["workspace://{path*}"]


@EACH_SANDBOX
async def test_save_and_run_script_as_a_subprocess(
    client: Client[Any], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_ONLY_TOKEN", "do-not-leak")
    source = (
        "import os, sys\n"
        "print('argv', sys.argv[1:])\n"
        "print('stdin', sys.stdin.read().strip())\n"
        "print('cwd', os.getcwd() == os.environ['OUTPUT_PATH'].rsplit('/', 1)[0])\n"
        "print('token', os.environ.get('SERVER_ONLY_TOKEN'))\n"
        "open('outputs/made.txt', 'w').write('made')\n"
        "print('oops', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    saved = await call(client, "save_script", name="job", content=source)
    assert saved == {
        "path": "scripts/job.py",
        "size": len(source),
        "created": True,
        "syntax_error": None,
    }
    result = await call(
        client, "run_script", path="scripts/job.py", args=["a b", "$HOME"], input_data="hello\n"
    )
    assert result["mode"] == "subprocess"
    assert (result["status"], result["returncode"], result["timed_out"]) == ("error", 3, False)
    assert result["stdout"].splitlines() == [
        "argv ['a b', '$HOME']",
        "stdin hello",
        "cwd True",
        "token None",
    ]
    assert result["stderr"] == "oops\n"
    assert result["new_files"] == ["outputs/made.txt"]
    assert (workspace / "outputs" / "made.txt").read_text() == "made"


async def test_save_script_validates_names_and_reports_syntax(client: Client[Any]) -> None:
    for name in ("../evil", "a/b", "", ".hidden"):
        assert_refused(
            await tool_error(client, "save_script", {"name": name, "content": "x = 1"}),
            "INVALID_INPUT",
        )
    saved = await call(client, "save_script", name="broken.py", content="def f(:\n")
    assert saved["path"] == "scripts/broken.py"
    assert saved["syntax_error"] is not None
    assert "line 1" in saved["syntax_error"]


def processes_with(token: str) -> set[int]:
    """Pids (as this machine sees them) of processes whose command line holds token."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        if token in " ".join(proc.info["cmdline"] or ()):
            found.add(proc.pid)
    return found


@EACH_SANDBOX
async def test_run_script_timeout_kills_the_script_and_its_child(client: Client[Any]) -> None:
    token = f"child-{uuid.uuid4().hex}"
    source = (
        "import subprocess, sys, time\n"
        "sleeper = 'import time; time.sleep(300)'\n"
        f"child = subprocess.Popen([sys.executable, '-c', sleeper, {token!r}])\n"
        "print('started', flush=True)\n"
        "time.sleep(300)\n"
    )
    await call(client, "save_script", name="hang", content=source)
    running = asyncio.create_task(call(client, "run_script", path="scripts/hang.py", timeout=5))
    seen: set[int] = set()
    while not running.done():  # the child, seen from here while the script runs
        seen |= await asyncio.to_thread(processes_with, token)
        await asyncio.sleep(0.1)
    result = await running
    assert (result["status"], result["timed_out"]) == ("timeout", True)
    assert result["stdout"] == "started\n"
    assert result["returncode"] is not None
    assert result["returncode"] < 0
    assert "killed with its children" in result["message"]
    assert seen, "the script's child was never seen running"
    assert not wait_gone(seen), "the script's child survived the timeout"
    assert not processes_with(token)


async def test_run_script_in_the_kernel_keeps_variables(client: Client[Any]) -> None:
    source = (
        "import sys\nanswer = 40 + len(sys.argv[1:])\nname = input('name? ')\nprint(sys.argv[1:])\n"
    )
    await call(client, "save_script", name="vars", content=source)
    result = await call(
        client,
        "run_script",
        path="scripts/vars.py",
        mode="kernel",
        args=["$HOME", "{x}"],
        input_data="ada\n",
    )
    assert (result["mode"], result["status"], result["returncode"]) == ("kernel", "ok", None)
    assert "['$HOME', '{x}']" in result["stdout"]
    assert (await run(client, "answer, name"))["result"] == "(42, 'ada')"
    failing = await call(client, "save_script", name="fails", content="1/0\n")
    error = await call(client, "run_script", path=failing["path"], mode="kernel")
    assert error["status"] == "error"
    assert error["error"]["ename"] == "ZeroDivisionError"
    assert "File scripts/fails.py:1" in "".join(error["error"]["traceback"])


async def test_run_script_needs_an_existing_session_and_file(client: Client[Any]) -> None:
    await call(client, "save_script", name="ok", content="print('ok')\n")
    text = await tool_error(client, "run_script", {"path": "scripts/ok.py", "session_id": "nope"})
    assert text.startswith("SESSION_NOT_FOUND:")
    assert_refused(
        await tool_error(client, "run_script", {"path": "scripts/missing.py"}), "FILE_NOT_FOUND"
    )
    assert_refused(await tool_error(client, "run_script", {"path": "scripts"}), "INVALID_INPUT")


async def test_kernels_run_in_the_workspace_with_output_path(
    client: Client[Any], workspace: Path
) -> None:
    result = await run(client, "import os\nprint(os.getcwd())\nprint(os.environ['OUTPUT_PATH'])")
    assert result["stdout"].splitlines() == [str(workspace), str(workspace / "outputs")]
