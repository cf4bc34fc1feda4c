"""Whether this host makes written memory huge pages on request (``MADV_COLLAPSE``), for the
tests of what forking templates do with it (``template_program.use_huge_pages``).

Asked of a child process, never of the test process itself: a few MiB written whole and
collapsed, then its ``AnonHugePages`` read back.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

#: Writes 8 MiB whole, asks for huge pages over it and prints how many KiB it got.
_PROBE = """
import ctypes, mmap
region = mmap.mmap(-1, 8 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
region.write(b"x" * (8 << 20))
base = ctypes.addressof(ctypes.c_char.from_buffer(region))
libc = ctypes.CDLL(None, use_errno=True)
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
start = -(-base // (2 << 20)) * (2 << 20)
libc.madvise(start, 4 << 20, 25)
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("AnonHugePages:"):
        print(line.split()[1])
"""


@functools.lru_cache(maxsize=1)
def huge_pages_on_request() -> bool:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode == 0 and int(done.stdout.strip() or 0) > 0


def huge_kib(pid: int) -> int:
    """KiB of a process's private memory mapped as huge pages."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0
