"""Killing a kernel's process tree (``process_records.kill_process_tree``): the walk finds
every descendant from the tree's own /proc entries, the same set psutil finds by reading
every process, and the kill leaves none alive."""

from __future__ import annotations

import subprocess
import sys

import psutil

from python_mcp_server.infra.kernels.process_records import descendants, kill_process_tree

#: A process with two children, one of which has two threads and a grandchild; it prints
#: "ready" once all exist, then waits.
TREE = """
import os, subprocess, sys, threading
grandchild = "import subprocess, sys, threading, time\\n" \\
    "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\\n" \\
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\\n" \\
    "print('up', flush=True)\\n" \\
    "p.wait()\\n"
children = [
    subprocess.Popen([sys.executable, "-c", grandchild], stdout=subprocess.PIPE, text=True),
    subprocess.Popen([sys.executable, "-c", grandchild], stdout=subprocess.PIPE, text=True),
]
for child in children:
    assert child.stdout.readline() == "up\\n"
print("ready", flush=True)
sys.stdin.read()
"""


def start_tree() -> subprocess.Popen[str]:
    root = subprocess.Popen(
        [sys.executable, "-c", TREE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert root.stdout is not None
    assert root.stdout.readline() == "ready\n"
    return root


def test_the_walk_finds_what_psutil_finds() -> None:
    root = start_tree()
    try:
        process = psutil.Process(root.pid)
        walked = {p.pid for p in descendants(process)}
        assert len(walked) == 4  # two children, each with its own child
        assert walked == {p.pid for p in process.children(recursive=True)}
    finally:
        kill_process_tree(root.pid)
        root.wait()


def test_the_kill_leaves_nothing_of_the_tree() -> None:
    root = start_tree()
    members = [psutil.Process(root.pid), *psutil.Process(root.pid).children(recursive=True)]
    kill_process_tree(root.pid)
    root.wait()
    _, alive = psutil.wait_procs(members, timeout=30)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []


def test_a_process_that_ended_has_no_descendants() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    process = psutil.Process(done.pid)
    done.wait()
    assert descendants(process) == []
    kill_process_tree(done.pid)  # nothing to do, no error
