"""What an environment provides at top level, read as data (``fork_guard.py``): real
folders holding what an install could leave, planted traps included."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from python_mcp_server.infra.kernels import fork_guard


def test_a_site_folder_provides_its_entries_pth_folders_and_top_level_names(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "numpy").mkdir()
    (site / "six.py").write_text("")
    (site / "_speedups.cpython-311-x86_64-linux-gnu.so").write_text("")
    (site / "__pycache__").mkdir()
    (site / "odd.name").mkdir()  # not a module name
    editable = tmp_path / "src"
    (editable / "mine").mkdir(parents=True)
    (site / "__editable__.mine.pth").write_text(f"# a comment\n{editable}\n")
    (site / "_link.pth").write_text("import site; site.addsitedir('/elsewhere')\n")
    dist = site / "Pillow-10.0.dist-info"
    dist.mkdir()
    (dist / "top_level.txt").write_text("PIL\n")
    found = fork_guard.provided(site)
    assert found == {"numpy", "six", "_speedups", "mine", "PIL"}


def test_a_planted_trap_is_skipped_not_followed_or_waited_on(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    fifo_dist = site / "fifo-1.0.dist-info"
    fifo_dist.mkdir()
    os.mkfifo(fifo_dist / "top_level.txt")  # a read would wait forever
    link_dist = site / "link-1.0.dist-info"
    link_dist.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("pandas\n")
    (link_dist / "top_level.txt").symlink_to(secret)
    os.mkfifo(site / "trap.pth")
    assert fork_guard.provided(site) == set()
    assert fork_guard.provided(tmp_path / "missing") == set()


def test_the_reasons_an_environment_is_not_forked(tmp_path: Path) -> None:
    imported = {"numpy", "IPython"}
    root = tmp_path / "env"
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.symlink_to(os.path.realpath(sys.executable))
    assert fork_guard.refusal(str(python), imported) is None
    (site,) = {*fork_guard.site_folders(root)}
    site.mkdir(parents=True)
    (site / "numpy").mkdir()
    assert "numpy" in (fork_guard.refusal(str(python), imported) or "")
    (site / "numpy").rmdir()
    (root / "etc" / "ipython").mkdir(parents=True)
    assert "etc/ipython" in (fork_guard.refusal(str(python), imported) or "")
    failed = fork_guard.refusal(str(python), imported, {"polars": "ModuleNotFoundError"})
    assert "polars" in (failed or "")
    other = tmp_path / "other-python"
    other.write_text("")
    assert "not the server's" in (fork_guard.refusal(str(other), imported) or "")
    session = tmp_path / "session-site"
    (session / "IPython").mkdir(parents=True)
    assert "IPython" in (fork_guard.shadowed([session], imported) or "")
    assert fork_guard.path_folders({"PYTHONPATH": f"{session}{os.pathsep}"}) == [session]
