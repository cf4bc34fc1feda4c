"""The init and waiter program of forked sandboxed kernels (``infra/kernels/reaper.py``),
run for real: it reaps every child, ends with the status of the one it names, the shell
way, and keeps the ignored SIGINT the Python code set before its ``execve``."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from python_mcp_server.infra.kernels import reaper
from python_mcp_server.infra.kernels.isolation_program import _reap_until, become_reaper
from python_mcp_server.infra.kernels.seccomp import host_arch
from python_mcp_server.infra.kernels.template_program import keep

PR_SET_CHILD_SUBREAPER = 36

pytestmark = pytest.mark.skipif(reaper.program() is None, reason="no program for this machine")


def under_reaper(*, code: int = 0, signum: int = 0, orphans: int = 0, others: int = 0) -> int:
    """Fork a process that forks the named child (ending with ``code``, or killed by
    ``signum``), ``others`` children that end first with 9, and ``orphans`` grandchildren
    it inherits as a subreaper, then becomes the reaper; its exit code."""
    pid = os.fork()
    if pid == 0:
        try:
            ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            gate_r, gate_w = os.pipe()
            for _ in range(orphans):
                if os.fork() == 0:
                    if os.fork() == 0:  # the grandchild: orphaned at once, ends after the gate
                        os.close(gate_w)
                        os.read(gate_r, 1)
                        os._exit(5)
                    os._exit(0)
            for _ in range(others):
                if os.fork() == 0:
                    os._exit(9)
            child = os.fork()
            if child == 0:
                os.close(gate_w)
                os.read(gate_r, 1)  # every other child ended or waits: end last
                if signum:
                    os.kill(os.getpid(), signum)
                os._exit(code)
            os.close(gate_r)
            os.close(gate_w)  # lets the named child and the orphans go
            _reap_until(child, program=reaper.program())
        finally:
            os._exit(99)  # the program did not take over
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_ends_with_the_named_childs_code() -> None:
    assert under_reaper(code=7) == 7
    assert under_reaper(code=0, others=3, orphans=2) == 0


def test_a_killed_child_ends_it_the_shell_way() -> None:
    assert under_reaper(signum=signal.SIGTERM, orphans=1) == 128 + signal.SIGTERM


def test_with_no_child_it_ends_with_one() -> None:
    pid = os.fork()
    if pid == 0:
        try:
            _reap_until(os.getpid() + 100000, program=reaper.program())
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1


def test_it_replaces_the_interpreter_and_ignores_sigint() -> None:
    gate_r, gate_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child = os.fork()
            if child == 0:
                os.close(gate_w)
                os.read(gate_r, 1)
                os._exit(3)
            _reap_until(child, program=reaper.program())
        finally:
            os._exit(99)
    os.close(gate_r)
    try:
        deadline = time.monotonic() + 30
        while "python" in os.readlink(f"/proc/{pid}/exe"):  # until its execve
            assert time.monotonic() < deadline, "the program did not replace the interpreter"
            time.sleep(0.01)
        assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:reaper")
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        assert int(fields["SigIgn"].strip(), 16) & (1 << (signal.SIGINT - 1))
        os.kill(pid, signal.SIGINT)  # ignored: it still ends with its child's code
    finally:
        os.close(gate_w)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3


def test_in_report_mode_it_writes_each_exit_as_the_template_did() -> None:
    """A sandboxed template's pid 1 (``template_program.keep``): a JSON line per child,
    ``ended`` for the one named, and 0 once none is left."""
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(out_w, 1)
            if os.fork() == 0:
                os._exit(3)
            killed = os.fork()
            if killed == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            named = os.fork()
            if named == 0:
                os._exit(7)
            keep(named, become_reaper, reaper.program())
        finally:
            os._exit(99)
    os.close(out_w)
    output = b""
    while chunk := os.read(out_r, 4096):
        output += chunk
    os.close(out_r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = [json.loads(line) for line in output.decode().splitlines()]
    assert {"ended": 7} in lines
    assert sorted(line["status"] for line in lines if "exit" in line) == [-signal.SIGKILL, 3]
    assert len(lines) == 3


#: The build command of ``reaper.py``'s docstring, which the shipped bytes come from.
BUILD = [
    "-Os", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-fno-asynchronous-unwind-tables",
    "-fno-stack-protector", "-fcf-protection=none", "-Wl,--build-id=none",
    "-Wl,-z,noseparate-code", "-Wl,-z,norelro", "-s",
]  # fmt: skip


def test_the_shipped_program_is_its_source_built(tmp_path: Path) -> None:
    """The bytes the server executes are exactly ``SOURCE`` built with the documented
    command (gcc 12, the toolchain they were built with): no unreviewable blob."""
    gcc = shutil.which("gcc")
    version = (
        subprocess.run([gcc, "-dumpversion"], capture_output=True, text=True, check=True)
        if gcc
        else None
    )
    found = version.stdout.strip() if version is not None else "no gcc"
    if found.split(".")[0] != "12" or host_arch() != "x86_64":
        message = f"needs gcc 12 on x86_64 to rebuild the program (found {found})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    source = tmp_path / "reaper.c"
    source.write_text(reaper.SOURCE)
    built = tmp_path / "reaper"
    subprocess.run([gcc, *BUILD, "-o", str(built), str(source)], check=True)
    subprocess.run(["objcopy", "-R", ".comment", str(built)], check=True)
    assert built.read_bytes().hex() == reaper.PROGRAMS["x86_64"]
