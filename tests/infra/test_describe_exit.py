"""How a kernel's end is put into words."""

from __future__ import annotations

from python_mcp_server.infra.kernels.local import describe_exit


def test_signal_from_negative_code() -> None:
    assert describe_exit(-9, "") == (
        "the kernel process was killed by SIGKILL (killed from outside, or out of memory)"
    )


def test_shell_style_signal_code_from_a_wrapper() -> None:
    assert describe_exit(139, "").startswith("the kernel process was killed by SIGSEGV")


def test_plain_exit_code_keeps_the_last_useful_log_lines() -> None:
    tail = "To connect another client to this kernel, use:\n    --existing /tmp/k.json\nboom\n"
    assert describe_exit(3, tail) == "the kernel process exited with code 3: boom"
