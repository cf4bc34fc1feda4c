"""How a kernel's end is put into words."""

from __future__ import annotations

from python_mcp_server.infra.kernels.process_kernel import describe_exit


def test_signal_from_negative_code() -> None:
    assert describe_exit(-9, "") == (
        "the kernel process was killed by SIGKILL (killed from outside, or out of memory)"
    )


def test_shell_style_signal_code_from_a_wrapper() -> None:
    assert describe_exit(139, "").startswith("the kernel process was killed by SIGSEGV")


def test_plain_exit_code_keeps_the_last_useful_log_lines() -> None:
    tail = "To connect another client to this kernel, use:\n    --existing /tmp/k.json\nboom\n"
    assert describe_exit(3, tail) == "the kernel process exited with code 3: boom"


def test_ipykernel_banner_is_never_a_reason() -> None:
    banner = (
        "NOTE: When using the `ipython kernel` entry point, Ctrl-C will not work.\n\n"
        "To exit, you will have to explicitly quit this process, by either sending\n"
        '"quit" from a client, or using Ctrl-\\ in UNIX-like environments.\n\n'
        "To read more about this, see https://github.com/ipython/ipython/issues/2049\n"
    )
    reason = describe_exit(-9, banner)
    assert (
        reason == "the kernel process was killed by SIGKILL (killed from outside, or out of memory)"
    )
    assert "To exit" not in describe_exit(0, banner + "MemoryError: boom\n")
    assert describe_exit(0, banner + "MemoryError: boom\n").endswith(": MemoryError: boom")
