"""Large buffers go back to the operating system when freed (glibc's malloc).

A kernel's 10 MB output passes through the server as a few large buffers (ZeroMQ's, the
message's bytes, the decoded text, the spill file's writes), allocated on several
threads. glibc raises its mmap threshold each time it frees a large mapped block (up to
32 MiB), after which such buffers come from the threads' heap arenas, which keep them:
the server's resident memory then grew by 10 to 40 MB per large output and stayed there.
Fixing the threshold at 1 MiB (``mallopt(M_MMAP_THRESHOLD)``, which also turns the
adjustment off) maps every larger buffer on its own and unmaps it when freed. Elsewhere
than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt``.
M_MMAP_THRESHOLD = -3
#: Buffers this large or larger are mapped on their own and unmapped when freed.
MMAP_THRESHOLD = 1024 * 1024


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold; whether it took effect."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not done:
        logger.debug("mallopt(M_MMAP_THRESHOLD) was refused")
    return done
