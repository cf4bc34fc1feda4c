"""The init and the waiter of a forked sandboxed kernel, and a sandboxed template's pid 1,
as a 976-byte program.

A kernel forked from a sandboxed template (``isolation_program.py``) runs under two
processes of its own: the waiter (the process the server knows, in the template's pid
namespace) and the init (pid 1 of the kernel's pid namespace). Each only waits: it reaps
every child that ends and ends with the status of one (the init with the kernel's, pid 2;
the waiter with the init's), the shell way (128 + the signal when it was killed), or with
1 when it has no child left. Left in Python, each kept about 1.3 MB of the template's
pages it had copied (every object it touched on the way); this program replaces the
process image (``execve`` of a sealed memory file) and holds a few pages.

The template's own pid 1 (``template_program.keep``: it outlives the template proper while
its kernels run) becomes it too, in ``report`` mode: it writes one JSON line per child
it reaps, ``{"ended": code}`` for the template proper and ``{"exit": pid, "status":
code}`` for any other (the code as ``os.waitstatus_to_exitcode`` gives it), and ends with
0 once no child is left. In Python it kept about 5.7 MB, once per template.

What carries over the ``execve`` is what the Python code set: the ignored signals
(SIGINT, and SIGPIPE, which Python ignores), the parent-death signal, ``no_new_privs``,
the capabilities (none), the seccomp filter, and the descriptors left open (the waiter's
end of the pipe its init watches; the template's standard output and error). Where no
program exists for the machine, or the ``execve`` fails (``vm.memfd_noexec``), the Python
loops (``isolation_program._reap_until``, ``template_program.keep``) do the same.

``SOURCE`` is the program; ``PROGRAMS`` holds it built (x86_64, gcc 12) with::

    gcc -Os -nostdlib -static -fno-pie -no-pie -fno-asynchronous-unwind-tables \\
        -fno-stack-protector -fcf-protection=none -Wl,--build-id=none \\
        -Wl,-z,noseparate-code -Wl,-z,norelro -s -o reaper reaper.c
    objcopy -R .comment reaper
"""

from __future__ import annotations

from python_mcp_server.infra.kernels.seccomp import host_arch

SOURCE = r"""/* A sandboxed kernel's init and waiter, and a sandboxed template's pid 1: reap every
   child. Without a second argument, end with the status of the child whose pid is
   argv[1] (0: the first child that ends), the shell way (128 + the signal when it was
   killed), or with 1 once no child is left. With "report" as the second argument, write
   one JSON line per child reaped to standard output, {"ended": code} for the child
   argv[1] names and {"exit": pid, "status": code} for any other (code: its exit code,
   or minus the signal that killed it), and end with 0 once no child is left. */
#define SYS_WRITE 1
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

static char *text(char *out, const char *from) {
    while (*from) *out++ = *from++;
    return out;
}

static char *number(char *out, long value) {
    char digits[24];
    int count = 0;
    if (value < 0) {
        *out++ = '-';
        value = -value;
    }
    do digits[count++] = (char)('0' + value % 10); while ((value /= 10) != 0);
    while (count) *out++ = digits[--count];
    return out;
}

__attribute__((noreturn, used)) void reap(long *stack) {
    long argc = stack[0];
    char **argv = (char **)(stack + 1);
    long target = 0;
    if (argc > 1)
        for (const char *digit = argv[1]; *digit >= '0' && *digit <= '9'; digit++)
            target = target * 10 + (*digit - '0');
    int report = argc > 2 && argv[2][0] == 'r';
    int status = 0;
    for (;;) {
        long pid = call4(SYS_WAIT4, -1, (long)&status, 0, 0);
        if (pid == -EINTR) continue;
        if (pid < 0) end(report ? 0 : 1);
        int signal = status & 0x7f;
        if (report) {
            char line[64];
            char *out = line;
            long code = signal ? -signal : (status >> 8) & 0xff;
            if (pid == target) {
                out = number(text(out, "{\"ended\": "), code);
            } else {
                out = number(text(out, "{\"exit\": "), pid);
                out = number(text(out, ", \"status\": "), code);
            }
            out = text(out, "}\n");
            call4(SYS_WRITE, 1, (long)line, out - line, 0);
            continue;
        }
        if (target == 0 || pid == target) end(signal ? 128 + signal : (status >> 8) & 0xff);
    }
}

__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall reap\n");
"""

#: The built program by architecture, as hexadecimal text.
PROGRAMS: dict[str, str] = {
    "x86_64": (
        "7f454c4602010100000000000000000002003e0001000000b0004000000000004000000000000000d0020000"
        "0000000000000000400038000200400004000300010000000500000000000000000000000000400000000000"
        "0000400000000000b602000000000000b602000000000000001000000000000051e574640600000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000001000000000000000"
        "4889e74883e4f0e8560000004889f94889f04885f67909c6072d48f7d848ffc1be01000000bf0a0000004899"
        "48f7ff83c230885434e74889f248ffc64885c075e94863c24889ca4889c6408a7c04e748ffc848ffc240887a"
        "ff85c075ed488d0431c3415455534883ec50488b0f4883f9017e36488b57104531c98a0283e8303c0977104d"
        "6bc90a480fbec048ffc24901c1ebe731db4883f9027413488b471831db8038720f94c3eb054531c931db31c0"
        "4c8d64240c8944240c4531d2b83d0000004883cfff31d24c89e60f054889c64883f8fc74e44885c0791b83f3"
        "0141b8e70000004863fb31d24531d24c89c04889d60f05ebf18b54240c89d183e17f85db0f84a600000085c9"
        "7407f7d94c63c1eb060fb6c64c63c04939f1488d6c2410740ab89c0240004889efeb19b8910240004889ef8a"
        "1084d2743a48ffc748ffc08857ffebef8a1084d2740b48ffc748ffc08857ffebefe8b2feffff4889c7b8a602"
        "40008a1084d2740b48ffc748ffc08857ffebef4c89c6e891feffffbab30240008a0a84c9740b48ffc048ffc2"
        "8848ffebef4829e84531d24889ee4889c2b8010000004889c70f05e90dffffff4d85c974094939c10f85fffe"
        "ffff85c9740883e9804863f9eb060fb6fe4863ff41b8e700000031d24531d24c89c04889d60f05ebf17b2265"
        "6e646564223a20007b2265786974223a20002c2022737461747573223a20007d0a00002e7368737472746162"
        "002e74657874002e726f64617461000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000000b00000001000000"
        "0600000000000000b000400000000000b000000000000000e101000000000000000000000000000001000000"
        "0000000000000000000000001100000001000000320000000000000091024000000000009102000000000000"
        "2500000000000000000000000000000001000000000000000100000000000000010000000300000000000000"
        "000000000000000000000000b602000000000000190000000000000000000000000000000100000000000000"
        "0000000000000000"
    ),
}


def program(arch: str | None = None) -> str | None:
    """The program for ``arch`` (default: this machine) as hexadecimal text, or None."""
    return PROGRAMS.get(arch or host_arch())
