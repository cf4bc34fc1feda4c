"""A seccomp filter for sandboxed kernels, compiled to classic BPF in pure Python.

bubblewrap's ``--seccomp FD`` reads a compiled program (an array of ``struct
sock_filter``) and installs it just before it executes the sandboxed command, so the
filter is in force before the kernel's interpreter runs a single line (a ``.pth`` file
planted in an environment runs too late to escape it).

The filter refuses, with ``EPERM``, what a kernel never needs and an attacker wants:
tracing other processes (``ptrace``, ``process_vm_*``), file system and namespace
changes (``mount`` and the new mount API, ``umount2``, ``pivot_root``, ``chroot``,
``unshare``, ``setns``, ``clone`` with namespace flags), the kernel's attack surface
(``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``, the keyring calls,
``open_by_handle_at``) and module, kexec, swap, reboot and accounting calls. ``clone3``
answers ``ENOSYS`` (its flags sit in memory a filter cannot read), so the C library falls
back to ``clone``, whose flags it can. Calls of another architecture (32-bit or x32 ABIs
on x86_64) are refused whole. Everything else is allowed.

A fork template (``sandbox_fork.py``) gets ``build_filter(template=True)``: the same
program less ``TEMPLATE_ALLOWED``, the calls its forked children need to isolate
themselves (a user namespace and the others, their own mounts); each child installs the
kernels' full filter on top before any of its code runs, and filters only ever add up.

Programs exist for x86_64 and aarch64; ``build_filter`` raises ``ValueError`` elsewhere.
"""

from __future__ import annotations

import errno
import platform
import struct

#: The calls refused with EPERM, by name (the table below gives their numbers).
DENIED: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
)

#: Calls a fork template's children make to isolate themselves (``isolation_program.py``),
#: so left out of the template's filter; ``setns``, ``ptrace`` and the rest stay refused.
TEMPLATE_ALLOWED: tuple[str, ...] = ("unshare", "mount", "open_tree", "move_mount")

#: System call numbers: name, x86_64, aarch64 (Linux uapi unistd_64.h, asm-generic).
_TABLE = """
ptrace               101  117
process_vm_readv     310  270
process_vm_writev    311  271
mount                165   40
umount2              166   39
pivot_root           155   41
chroot               161   51
unshare              272   97
setns                308  268
open_tree            428  428
move_mount           429  429
fsopen               430  430
fsconfig             431  431
fsmount              432  432
fspick               433  433
mount_setattr        442  442
bpf                  321  280
perf_event_open      298  241
userfaultfd          323  282
keyctl               250  219
add_key              248  217
request_key          249  218
io_uring_setup       425  425
io_uring_enter       426  426
io_uring_register    427  427
open_by_handle_at    304  265
name_to_handle_at    303  264
kexec_load           246  104
kexec_file_load      320  294
init_module          175  105
finit_module         313  273
delete_module        176  106
swapon               167  224
swapoff              168  225
reboot               169  142
acct                 163   89
clone                 56  220
clone3               435  435
"""
_ARCHES = ("x86_64", "aarch64")
_NUMBERS: dict[str, dict[str, int]] = {
    arch: {row.split()[0]: int(row.split()[1 + i]) for row in _TABLE.strip().splitlines()}
    for i, arch in enumerate(_ARCHES)
}

#: AUDIT_ARCH_* values of ``seccomp_data.arch``.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
#: x32 system calls on x86_64 carry this bit in their number.
_X32_BIT = 0x40000000
#: clone() flags that make namespaces (CLONE_NEWNS ... CLONE_NEWNET, CLONE_NEWTIME).
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000
CLONE_NAMESPACE_FLAGS |= 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
# Offsets in struct seccomp_data: nr, arch, then instruction pointer and six arguments.
_NR, _ARCH, _ARG0_LOW = 0, 4, 16


def host_arch() -> str:
    """This machine's architecture name as the tables spell it."""
    machine = platform.machine().lower()
    return _ALIASES.get(machine, machine)


def supported(arch: str | None = None) -> bool:
    return (arch or host_arch()) in _NUMBERS


def build_filter(arch: str | None = None, *, template: bool = False) -> bytes:
    """The compiled program for ``arch`` (default: this machine), as bwrap reads it;
    ``template``: a fork template's, which lets its children make their namespaces."""
    arch = arch or host_arch()
    if arch not in _NUMBERS:
        raise ValueError(f"no seccomp filter for the {arch} architecture")
    numbers = _NUMBERS[arch]
    # Each entry: (code, jump-if-true label, jump-if-false label, k). Labels are names of
    # the return blocks at the end; None means "next instruction".
    body: list[tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, _ARCH),
        (_JEQ_K, None, "deny", _AUDIT_ARCH[arch]),
        (_LD_W_ABS, None, None, _NR),
    ]
    if arch == "x86_64":
        body.append((_JGE_K, "deny", None, _X32_BIT))
    denied = [name for name in DENIED if not (template and name in TEMPLATE_ALLOWED)]
    body += [(_JEQ_K, "deny", None, numbers[name]) for name in denied]
    body.append((_JEQ_K, "enosys", None, numbers["clone3"]))
    body.append((_JEQ_K, "clone", "allow", numbers["clone"]))  # children use unshare
    # Jumps only go forward: the clone check comes before the blocks it jumps to.
    tail: dict[str, list[tuple[int, str | None, str | None, int]]] = {
        "clone": [
            (_LD_W_ABS, None, None, _ARG0_LOW),
            (_JSET_K, "deny", "allow", CLONE_NAMESPACE_FLAGS),
        ],
        "allow": [(_RET_K, None, None, _RET_ALLOW)],
        "deny": [(_RET_K, None, None, _RET_ERRNO | errno.EPERM)],
        "enosys": [(_RET_K, None, None, _RET_ERRNO | errno.ENOSYS)],
    }
    program = list(body)
    labels: dict[str, int] = {}
    for label, block in tail.items():
        labels[label] = len(program)
        program += block
    out = bytearray()
    for index, (code, true, false, k) in enumerate(program):
        jt = 0 if true is None else labels[true] - index - 1
        jf = 0 if false is None else labels[false] - index - 1
        if not (0 <= jt <= 255 and 0 <= jf <= 255):  # pragma: no cover - table too long
            raise ValueError("seccomp program too long for short jumps")
        out += struct.pack("<HBBI", code, jt, jf, k)
    return bytes(out)


def syscall_number(name: str, arch: str | None = None) -> int:
    """The number of a call in the tables (tests use it to call them through ctypes)."""
    return _NUMBERS[arch or host_arch()][name]
