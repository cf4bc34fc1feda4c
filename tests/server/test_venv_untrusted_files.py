"""list_venvs reads environments' files as untrusted data (issue 11, rule 1 and 4).

An environment's folder may hold what a kernel planted (a sandboxed install runs a
package's build with the folder writable). Planted here directly, as such a build would
leave them: pyvenv.cfg as a symlink to a file elsewhere, as a huge file, as a FIFO; a
site-packages that is a symlink to another environment's; dist-info folders and METADATA
files that are symlinks or FIFOs; a metadata record with a forged timestamp. The listing
answers promptly, reports nothing it would have had to follow or block on, and the
environment can still be deleted.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
from pathlib import Path
from typing import Any

from fastmcp import Client

from python_mcp_server.settings import Settings
from tests.helpers import call

#: Every listing must come back by then; one that blocks on a FIFO never would.
DEADLINE = 60.0


async def listing(client: Client[Any]) -> dict[str, dict[str, Any]]:
    answer = await asyncio.wait_for(call(client, "list_venvs"), DEADLINE)
    return {venv["name"]: venv for venv in answer["venvs"]}


def site_packages(root: Path) -> Path:
    (found,) = root.glob("lib/python*/site-packages")
    return found


def sparse(path: Path, size: int, tail: bytes) -> None:
    """Make ``path`` ``size`` bytes long without writing them (a hole), then ``tail``."""
    with open(path, "ab") as handle:
        handle.truncate(size)
        handle.write(tail)


def dist_info(folder: Path, name: str, version: str = "1.0") -> Path:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return info


async def test_pyvenv_cfg_link_huge_file_and_fifo_are_not_trusted(
    client: Client[Any], settings: Settings, tmp_path: Path
) -> None:
    for name in ("linked", "huge", "fifo"):
        await call(client, "create_venv", venv_name=name)
    before = await listing(client)
    assert {before[n]["python_version"] for n in ("linked", "huge", "fifo")} == {
        platform.python_version()
    }
    elsewhere = tmp_path / "elsewhere.cfg"
    elsewhere.write_text("home = /root\nversion_info = 3.99.1\n")
    roots = {name: settings.venvs_path / name for name in ("linked", "huge", "fifo")}
    (roots["linked"] / "pyvenv.cfg").unlink()
    (roots["linked"] / "pyvenv.cfg").symlink_to(elsewhere)
    sparse(roots["huge"] / "pyvenv.cfg", 4 << 30, b"\nversion_info = 3.98.0\n")
    (roots["fifo"] / "pyvenv.cfg").unlink()
    os.mkfifo(roots["fifo"] / "pyvenv.cfg")

    after = await listing(client)
    for name in roots:
        assert after[name]["python_version"] == "unknown", after[name]
        assert after[name]["package_count"] == 0
    assert after["default"]["python_version"] == platform.python_version()
    for name in roots:  # still deletable: a link in it is removed, never followed
        await asyncio.wait_for(call(client, "delete_venv", venv_name=name), DEADLINE)
    assert elsewhere.read_text() == "home = /root\nversion_info = 3.99.1\n"
    assert set(await listing(client)) == {"default"}


async def test_planted_links_and_fifos_in_site_packages_are_not_followed(
    client: Client[Any], settings: Settings, tmp_path: Path
) -> None:
    await call(client, "create_venv", venv_name="planted")
    await call(client, "create_venv", venv_name="borrowed")
    root = settings.venvs_path / "planted"
    own = site_packages(root)
    size_before = (await listing(client))["planted"]["size_bytes"]

    outside = tmp_path / "outside"
    dist_info(outside, "secret-package")  # a folder of the host the server can read
    big = outside / "big.bin"
    sparse(big, 256 << 20, b"")
    dist_info(own, "honest")  # counted: a real distribution
    (own / "linked-1.0.dist-info").symlink_to(outside / "secret-package-1.0.dist-info")
    metadata_link = own / "metalink-1.0.dist-info"
    metadata_link.mkdir()
    (metadata_link / "METADATA").symlink_to(outside / "secret-package-1.0.dist-info" / "METADATA")
    fifo_dist = own / "fifo-1.0.dist-info"
    fifo_dist.mkdir()
    os.mkfifo(fifo_dist / "METADATA")
    (own / "big.bin").symlink_to(big)
    (own / "bigdir").symlink_to(outside)

    listed = (await listing(client))["planted"]
    assert listed["package_count"] == 1, listed
    # Only what was planted counts, as itself: not the 256 MiB file behind a link.
    assert listed["size_bytes"] - size_before < 1 << 20, listed

    # site-packages swapped for a link to another environment's, which holds packages.
    other = site_packages(settings.venvs_path / "borrowed")
    dist_info(other, "belongs-elsewhere")
    assert (await listing(client))["borrowed"]["package_count"] == 1
    moved = own.with_name("site-packages.moved")
    own.rename(moved)
    own.symlink_to(other)
    listed = (await listing(client))["planted"]
    assert listed["package_count"] == 0, listed


async def test_a_forged_metadata_record_is_data(client: Client[Any], settings: Settings) -> None:
    await call(client, "create_venv", venv_name="forged", description="mine")
    record = settings.venvs_path / "forged" / "mcp-venv.json"
    record.write_text(json.dumps({"created_at": "not a time", "description": "x" * 100_000}))
    listed = (await listing(client))["forged"]
    assert listed["created_at"] is None
    assert len(listed["description"]) == 500
    # A record that is a FIFO: the listing does not wait for a writer.
    record.unlink()
    os.mkfifo(record)
    listed = (await listing(client))["forged"]
    assert listed["description"] == ""
