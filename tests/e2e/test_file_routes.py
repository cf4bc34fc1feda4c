"""Upload and download over real HTTP against the ``python-mcp-server`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from fastmcp import Client

from tests.e2e.conftest import LaunchedServer, StartServer, assert_gone

TIMEOUT = 60


def error_of(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    code = body["error"]["code"]
    message = body["error"]["message"]
    assert "/tmp" not in message, message
    return f"{code}: {message}"


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    """A multipart body with the parts in this order: (field, filename or None, data)."""
    chunks = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


def temp_leftovers(workspace: Path) -> list[str]:
    return [p.name for p in workspace.rglob(".pmcp-*")]


def test_upload_then_download_round_trip(http_server: LaunchedServer) -> None:
    payload = os.urandom(700_000)  # several chunks each way
    with httpx.Client(
        base_url=http_server.url, timeout=TIMEOUT, headers=http_server.headers
    ) as http:
        first = http.post("/files/upload", files={"file": ("data.bin", payload)})
        assert first.status_code == 201, first.text
        assert first.json() == {"path": "uploads/data.bin", "size": len(payload), "created": True}
        assert (http_server.workspace / "uploads" / "data.bin").read_bytes() == payload
        again = http.post("/files/upload", files={"file": ("data.bin", b"new")})
        assert again.status_code == 200
        assert again.json()["created"] is False
        placed = http.post(
            "/files/upload",
            data={"path": "in/sub/renamed.bin"},
            files={"file": ("ignored.bin", payload)},
        )
        assert placed.json()["path"] == "in/sub/renamed.bin"
        with http.stream("GET", "/files/download/in/sub/renamed.bin") as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(len(payload))
            assert "renamed.bin" in response.headers["content-disposition"]
            received = b"".join(response.iter_bytes())
        assert received == payload
        text = http.get("/files/download/uploads/data.bin")
        assert text.content == b"new"
        # The path field may come after the file part.
        body = multipart([("file", "late.csv", b"a,b\n"), ("path", None, b"tables/")])
        late = http.post(
            "/files/upload",
            content=body,
            headers={"content-type": "multipart/form-data; boundary=b0undary"},
        )
        assert late.json()["path"] == "tables/late.csv"
        refused = http.post(
            "/files/upload",
            data={"path": "tables/late.csv", "overwrite": "false"},
            files={"file": ("x", b"x")},
        )
        assert refused.status_code == 409
        assert error_of(refused).startswith("FILE_EXISTS:")
    assert temp_leftovers(http_server.workspace) == []


async def test_kernel_reads_uploads_and_its_outputs_download(http_server: LaunchedServer) -> None:
    async with httpx.AsyncClient(
        base_url=http_server.url, timeout=TIMEOUT, headers=http_server.headers
    ) as http:
        uploaded = await http.post("/files/upload", files={"file": ("n.txt", b"20 22")})
        assert uploaded.status_code == 201
        async with Client(http_server.mcp_url, auth=http_server.token) as client:
            result = await client.call_tool(
                "run_python_code",
                {
                    "code": "total = sum(map(int, open('uploads/n.txt').read().split()))\n"
                    "open('outputs/total.txt', 'w').write(str(total))"
                },
            )
            assert result.structured_content is not None
            assert result.structured_content["new_files"] == ["outputs/total.txt"]
        downloaded = await http.get("/files/download/outputs/total.txt")
        assert downloaded.text == "42"


def test_http_refusals(start_server: StartServer, tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("outside secret")
    routes_ws = tmp_path / "routes-ws"
    # The state folder inside the workspace (not the default) must stay hidden there.
    state = {"MCP_SANDBOX": "none", "MCP_STATE_DIR": str(routes_ws / ".state")}
    server = start_server(env=state, workspace=routes_ws)
    ws = server.workspace
    os.symlink("/etc/passwd", ws / "passwd_link")
    os.link(secret, ws / "hard.txt")
    os.mkfifo(ws / "pipe")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, headers=server.headers) as http:
        expected = {
            "/files/download/..%2F..%2Foutside-secret.txt": (403, "PATH_OUTSIDE_WORKSPACE"),
            "/files/download/%2Fetc%2Fpasswd": (403, "PATH_OUTSIDE_WORKSPACE"),
            "/files/download/passwd_link": (403, "PATH_OUTSIDE_WORKSPACE"),
            "/files/download/hard.txt": (403, "PATH_OUTSIDE_WORKSPACE"),
            "/files/download/.state/kernels": (403, "PATH_OUTSIDE_WORKSPACE"),
            "/files/download/pipe": (400, "INVALID_INPUT"),
            "/files/download/uploads": (400, "INVALID_INPUT"),
            "/files/download/missing.txt": (404, "FILE_NOT_FOUND"),
        }
        for url, (status, code) in expected.items():
            response = http.get(url)
            assert response.status_code == status, (url, response.text)
            assert error_of(response).startswith(f"{code}:"), url
            assert "outside secret" not in response.text
            assert "root:" not in response.text
        for path in ("../escape.txt", ".state/evil.txt", "passwd_link"):
            response = http.post("/files/upload", data={"path": path}, files={"file": ("f", b"x")})
            assert response.status_code == 403, (path, response.text)
        assert not (tmp_path / "escape.txt").exists()
        assert not (ws / ".state" / "evil.txt").exists()
        no_file = http.post("/files/upload", data={"path": "x.txt"})
        assert no_file.status_code == 400
        not_multipart = http.post("/files/upload", content=b"raw")
        assert error_of(not_multipart).startswith("INVALID_INPUT:")
    assert secret.read_text() == "outside secret"
    assert temp_leftovers(ws) == []


async def test_kernel_made_links_are_not_served(start_server: StartServer, tmp_path: Path) -> None:
    secret = tmp_path / "kernel-secret.txt"
    secret.write_text("kernel-visible secret")
    server = start_server(env={"MCP_SANDBOX": "none"})
    async with Client(server.mcp_url, auth=server.token) as client:
        made = await client.call_tool(
            "run_python_code",
            {
                "code": "import os\n"
                "os.symlink('/etc/passwd', 'etc_passwd')\n"
                f"os.link({str(secret)!r}, 'linked.txt')"
            },
        )
        assert made.structured_content is not None
        assert made.structured_content["status"] == "ok"
    async with httpx.AsyncClient(
        base_url=server.url, timeout=TIMEOUT, headers=server.headers
    ) as http:
        for name in ("etc_passwd", "linked.txt"):
            response = await http.get(f"/files/download/{name}")
            assert response.status_code == 403
            assert "secret" not in response.text
            assert "root:" not in response.text


def test_size_cap_on_uploads_and_downloads(start_server: StartServer) -> None:
    server = start_server(env={"MCP_MAX_FILE_BYTES": "1000"})
    (server.workspace / "big.bin").write_bytes(b"z" * 1001)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, headers=server.headers) as http:
        download = http.get("/files/download/big.bin")
        assert download.status_code == 413
        assert error_of(download).startswith("FILE_TOO_LARGE:")
        fits = http.post("/files/upload", files={"file": ("ok.bin", b"y" * 1000)})
        assert fits.status_code == 201
        too_big = http.post("/files/upload", files={"file": ("big.bin", b"y" * 1001)})
        assert too_big.status_code == 413
        assert "MCP_MAX_FILE_BYTES" in error_of(too_big)

        def chunks() -> Any:  # no Content-Length: the cap holds while bytes stream in
            body = multipart([("file", "streamed.bin", b"s" * 200_000)])
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        streamed = http.post(
            "/files/upload",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b0undary"},
        )
        assert streamed.status_code == 413
    assert not (server.workspace / "uploads" / "big.bin").exists()
    assert not (server.workspace / "uploads" / "streamed.bin").exists()
    assert temp_leftovers(server.workspace) == []


async def test_sigterm_ends_the_server_and_its_kernels(start_server: StartServer) -> None:
    server = start_server()
    async with Client(server.mcp_url, auth=server.token) as client:
        await client.call_tool("run_python_code", {"code": "1 + 1"})
    async with httpx.AsyncClient(
        base_url=server.url, timeout=TIMEOUT, headers=server.headers
    ) as http:
        uploaded = await http.post("/files/upload", files={"file": ("a.txt", b"a")})
        assert uploaded.status_code == 201
    kernels = server.kernel_pids()
    assert kernels
    assert server.stop() == 0, server.log()
    assert_gone(kernels)
