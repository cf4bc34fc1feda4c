"""Python's cyclic garbage collector in the server: held during start-up, then told the
start-up objects are permanent.

The server imports FastMCP, pydantic, jupyter_client and the rest, and builds its tools'
schemas: about 180,000 objects that live as long as the process. Left alone, the
collector walked them four times during start-up (full collections of 14 to 316 ms each,
most of half a second of CPU), and then every full collection of the running server,
which the collector runs whenever a quarter as many objects again have survived, walked
all of them again: a pause of 50 to 300 ms of the event loop, every call in flight
waiting on it.

``hold()`` turns automatic collection off while the server starts; ``settle()`` collects
once (start-up garbage is freed, not kept), moves every surviving object to the permanent
generation (``gc.freeze()``), which later collections skip, and turns collection back
on. Objects made afterwards (sessions, calls) are collected as usual.
"""

from __future__ import annotations

import gc


def hold() -> None:
    """No automatic collection until ``settle()``."""
    gc.disable()


def settle() -> int:
    """Free start-up garbage, make what survives permanent, collect automatically again;
    returns how many objects are now permanent."""
    gc.collect()
    gc.freeze()
    gc.enable()
    return gc.get_freeze_count()
