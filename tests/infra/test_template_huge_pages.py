"""A template's written memory becomes huge pages before it forks (``use_huge_pages``):
fewer page-table entries for each fork to copy, nothing more shared than before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from python_mcp_server.infra.kernels.limits import MIB
from python_mcp_server.infra.kernels.template_launcher import TemplateLauncher
from tests.huge_page_support import huge_kib, huge_pages_on_request
from tests.infra.test_template_launcher import execute, start

#: 16 MiB written whole, and 16 MiB with two pages written, then ``use_huge_pages``.
_REGIONS = """
import ctypes, json, mmap
from python_mcp_server.infra.kernels.template_program import use_huge_pages

flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
dense = mmap.mmap(-1, 16 << 20, flags=flags)
dense.write(bytes(range(256)) * (16 << 12))
sparse = mmap.mmap(-1, 16 << 20, flags=flags)
sparse[0:1] = sparse[8 << 20 : (8 << 20) + 1] = b"x"
libc = ctypes.CDLL(None)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def resident(region):
    pages = ctypes.create_string_buffer(len(region) // mmap.PAGESIZE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(region))
    assert libc.mincore(address, len(region), pages) == 0
    return len(pages.raw) - pages.raw.count(0)


before = resident(sparse)
made = use_huge_pages()
print(json.dumps({
    "made": made,
    "sparse_before": before,
    "sparse_after": resident(sparse),
    "intact": dense[:] == bytes(range(256)) * (16 << 12) and sparse[0:1] == b"x",
    "huge_kib": int(next(
        line.split()[1] for line in open("/proc/self/smaps_rollup")
        if line.startswith("AnonHugePages:")
    )),
}))
"""


@pytest.fixture(autouse=True)
def _needs_huge_pages() -> None:
    if not huge_pages_on_request():
        pytest.skip("this host makes no huge pages on request (MADV_COLLAPSE, Linux 6.1)")


def test_written_memory_becomes_huge_pages_and_unwritten_memory_stays_unused() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _REGIONS], capture_output=True, text=True, timeout=120, check=True
    )
    found = json.loads(done.stdout)
    assert found["intact"]
    # 16 MiB written whole hold at least 7 aligned huge pages of 2 MiB
    assert found["made"] >= 14 * MIB
    assert found["huge_kib"] >= 14 * 1024
    # two written pages of 16 MiB are not made 4 MiB of the process's memory
    assert found["sparse_after"] == found["sparse_before"]


async def test_kernels_of_a_template_in_huge_pages_still_write_only_their_own_copy(
    launcher: TemplateLauncher, workspace: Path
) -> None:
    first = await start(launcher, workspace)
    second = await start(launcher, workspace)
    try:
        (template,) = launcher.templates
        assert huge_kib(template.pid) > 0
        # the preloaded module's objects live in the template's (huge) pages
        await execute(first, "import numpy\nnumpy.e = 5.0\nnumpy.shared_marker = 'first'")
        probe = "import numpy\nprint(numpy.e, hasattr(numpy, 'shared_marker'))"
        seen = await execute(second, probe)
        assert seen == "2.718281828459045 False\n"
        assert await execute(first, "print(numpy.e)") == "5.0\n"
        assert first.kernel.pid is not None
        uss = psutil.Process(first.kernel.pid).memory_full_info().uss
        assert uss < 20 * MIB, uss / MIB  # it copied what it wrote, not huge pages whole
    finally:
        await first.close(kill=True)
        await second.close(kill=True)
