"""Tiny wheels built by hand in a temporary folder, so install tests need no network.

A wheel is a zip with the package, METADATA, WHEEL and a RECORD of hashes: enough for
uv and pip. ``local_index`` gives settings that install only from that folder.
"""

from __future__ import annotations

import base64
import hashlib
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
