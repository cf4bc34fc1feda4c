"""The init and the waiter of a forked sandboxed kernel, as a 568-byte program.

A kernel forked from a sandboxed template (``isolation_program.py``) runs under two
processes of its own: the waiter (the process the server knows, in the template's pid
namespace) and the init (pid 1 of the kernel's pid namespace). Each only waits: it reaps
every child that ends and ends with the status of one (the init with the kernel's, pid 2;
the waiter with the init's), the shell way (128 + the signal when it was killed), or with
1 when it has no child left. Left in Python, each kept about 1.3 MB of the template's
pages it had copied (every object it touched on the way); this program replaces the
process image (``execve`` of a sealed memory file) and holds a few pages.

What carries over the ``execve`` is what the Python code set: the ignored SIGINT, the
parent-death signal, ``no_new_privs``, the capabilities (none), the seccomp filter, and
the one descriptor kept open (the waiter's end of the pipe its init watches). Where no
program exists for the machine, or the ``execve`` fails (``vm.memfd_noexec``), the Python
loop (``isolation_program._reap_until``) does the same.

``SOURCE`` is the program; ``PROGRAMS`` holds it built (x86_64, gcc 12) with::

    gcc -Os -nostdlib -static -fno-pie -no-pie -fno-asynchronous-unwind-tables \\
        -fno-stack-protector -fcf-protection=none -Wl,--build-id=none \\
        -Wl,-z,noseparate-code -Wl,-z,norelro -s -o reaper reaper.c
    objcopy -R .comment reaper
"""

from __future__ import annotations

from python_mcp_server.infra.kernels.seccomp import host_arch

SOURCE = r"""/* A sandboxed kernel's init and waiter: reap every child; end with the status of the
   child whose pid is argv[1] (0: the first child that ends), the shell way (128 + signal
   when it was killed). Ends with 1 when it has no child left. */
#define SYS_WAIT4 61
#define SYS_EXIT_GROUP 231
#define EINTR 4

static long call4(long number, long a, long b, long c, long d) {
    register long r10 __asm__("r10") = d;
    long result;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"(number), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return result;
}

__attribute__((noreturn)) static void end(long code) {
    for (;;) call4(SYS_EXIT_GROUP, code, 0, 0, 0);
}

__attribute__((noreturn, used)) void reap(long *stack) {
    long argc = stack[0];
    char **argv = (char **)(stack + 1);
    long target = 0;
    if (argc > 1)
        for (const char *digit = argv[1]; *digit >= '0' && *digit <= '9'; digit++)
            target = target * 10 + (*digit - '0');
    int status = 0;
    for (;;) {
        long pid = call4(SYS_WAIT4, -1, (long)&status, 0, 0);
        if (pid == -EINTR) continue;
        if (pid < 0) end(1);
        if (target == 0 || pid == target) break;
    }
    int signal = status & 0x7f;
    end(signal ? 128 + signal : (status >> 8) & 0xff);
}

__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall reap\n");
"""

#: The built program by architecture, as hexadecimal text.
PROGRAMS: dict[str, str] = {
    "x86_64": (
        "7f454c4602010100000000000000000002003e0001000000b000400000000000400000000000000078010000"
        "0000000000000000400038000200400003000200010000000500000000000000000000000000400000000000"
        "000040000000000061010000000000006101000000000000001000000000000051e574640600000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000001000000000000000"
        "4889e74883e4f0e8000000004531c048833f017e1d488b57108a0283e8303c0977104d6bc00a480fbec048ff"
        "c24901c0ebe731c0488d7424fc41b93d0000004883cfff894424fc4531d231d24c89c80f054883f8fc74f048"
        "85c0791a41b8e7000000bf0100000031d24531d24c89c04889d60f05ebf14d85c074054939c075c78b4424fc"
        "89c283e27f740b8d82800000004863f8eb060fb6fc4863ff41b8e700000031d24531d24c89c04889d60f05eb"
        "f1002e7368737472746162002e74657874000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0b000000010000000600000000000000b000400000000000b000000000000000b10000000000000000000000"
        "0000000001000000000000000000000000000000010000000300000000000000000000000000000000000000"
        "61010000000000001100000000000000000000000000000001000000000000000000000000000000"
    ),
}


def program(arch: str | None = None) -> str | None:
    """The program for ``arch`` (default: this machine) as hexadecimal text, or None."""
    return PROGRAMS.get(arch or host_arch())
