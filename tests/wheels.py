"""Tiny wheels built by hand in a temporary folder, so install tests need no network.

A wheel is a zip with the package, METADATA, WHEEL and a RECORD of hashes: enough for
uv and pip. ``local_index`` gives settings that install only from that folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any


def build_wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    module: str | None = None,
    body: str | None = None,
    requires: tuple[str, ...] = (),
) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl`` holding one package module."""
    module = module or name.replace("-", "_").replace(".", "_")
    dist = f"{name.replace('-', '_')}-{version}"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requires)
    files = {
        f"{module}/__init__.py": body if body is not None else f"VERSION = {version!r}\n",
        f"{dist}.dist-info/METADATA": metadata,
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={encoded},{len(text.encode())}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


#: The build backend of ``build_probe_sdist``: while building, it tries the network and
#: puts what happened (JSON) in the wheel's module as ``OUTCOME``.
_PROBE_BACKEND = """\
import base64, hashlib, json, os, socket, urllib.error, urllib.request, zipfile
ALLOWED, PORT = {allowed!r}, {port}
META = "Metadata-Version: 2.1\\nName: pmcp-net-probe\\nVersion: 1.0\\n"
WHEEL = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
def _fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return [r.status, r.read().decode()]
    except urllib.error.HTTPError as e:
        return [e.code, e.read().decode()]
    except OSError as e:
        return [type(e).__name__, ""]
def _probe():
    out = {{"index": _fetch(ALLOWED), "proxied": _fetch(f"http://127.0.0.1:{{PORT}}/")}}
    for key, address in (("direct", ("127.0.0.1", PORT)), ("link", ("169.254.169.254", 80))):
        try:
            socket.create_connection(address, 5).close()
            out[key] = "reached"
        except OSError as e:
            out[key] = type(e).__name__
    return json.dumps(out)
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = "pmcp_net_probe-1.0"
    files = {{
        "pmcp_net_probe/__init__.py": f"OUTCOME = {{_probe()!r}}\\n",
        f"{{dist}}.dist-info/METADATA": META,
        f"{{dist}}.dist-info/WHEEL": WHEEL,
    }}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{{path}},sha256={{digest.decode()}},{{len(text.encode())}}")
    record.append(f"{{dist}}.dist-info/RECORD,,")
    files[f"{{dist}}.dist-info/RECORD"] = "\\n".join(record) + "\\n"
    name = f"{{dist}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return name
"""


def build_probe_sdist(folder: Path, allowed_url: str, port: int) -> Path:
    """``pmcp_net_probe-1.0.tar.gz``: an sdist with an in-tree build backend (no build
    requirements) that, while building, fetches ``allowed_url``, ``127.0.0.1:port`` through
    the proxy variables, and connects straight to ``127.0.0.1:port`` and link-local."""
    files = {
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\n'
            'backend-path = ["."]\n\n[project]\nname = "pmcp-net-probe"\nversion = "1.0"\n'
        ),
        "PKG-INFO": "Metadata-Version: 2.1\nName: pmcp-net-probe\nVersion: 1.0\n",
        "probe_backend.py": _PROBE_BACKEND.format(allowed=allowed_url, port=port),
    }
    sdist = folder / "pmcp_net_probe-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"pmcp_net_probe-1.0/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return sdist


def build_test_wheels(root: Path) -> dict[str, Any]:
    """The wheels the package tests use, and settings that install only from them."""
    links = root / "wheels"
    links.mkdir()
    empty_index = root / "empty-index"
    empty_index.mkdir()
    build_wheel(links, "pmcp-tiny", "1.0")
    build_wheel(links, "pmcp-tiny", "2.0")
    build_wheel(links, "pmcp-other", "1.0")
    build_wheel(links, "pmcp-uses-tiny", "1.0", requires=("pmcp-tiny>=1",))
    # A package the server has too (iniconfig comes with pytest): installing this fake
    # one must change the environment only, never the server's copy.
    build_wheel(links, "iniconfig", "0.0.1", body="FAKE = True\n")
    return {"pip_find_links": str(links), "pip_index_url": empty_index.as_uri()}
