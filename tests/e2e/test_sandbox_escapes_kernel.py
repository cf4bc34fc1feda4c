"""Hostile kernel code against the confinement itself, end to end (issue 11 classes 5, 10
and 11), on the escape suite's server: the real command, ``MCP_SANDBOX=bwrap``, a token, a
256 MiB memory limit. The server must keep serving after each attempt (``attacker``)."""

from __future__ import annotations

from typing import Any

import anyio
from fastmcp import Client

from tests.e2e import test_sandbox_escapes as suite
from tests.helpers import call, run
from tests.sandbox_support import FILL_TMPFS

# The suite's server and its client, as fixtures of this module (a server of its own).
index_port = suite.index_port
target = suite.target
attacker = suite.attacker

LIMIT_MB = 256
#: What the server logs for each message it cannot decode.
DROPPED = "dropped an undecodable iopub message"  # MCP_MAX_MEMORY_MB of the suite's server

#: The kernel's uid, effective capabilities and no_new_privs, then the errno of ptrace
#: (attach to pid 1), unshare (a new user namespace) and mount, called directly.
IDENTITY_AND_CALLS = """\
import ctypes, errno, os
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print(os.getuid(), int(status['CapEff'], 16), status['NoNewPrivs'].strip())
libc = ctypes.CDLL(None, use_errno=True)
def refused(call, *args):
    ctypes.set_errno(0)
    result = call(*args)
    return errno.errorcode.get(ctypes.get_errno(), 'allowed') if result == -1 else 'allowed'
print(refused(libc.ptrace, 16, 1, None, None),
      refused(libc.unshare, 0x10000000),
      refused(libc.mount, b'none', b'/mnt', b'tmpfs', 0, None))
"""

#: Sends, on the kernel's own IOPub socket and signed with its own key, messages of a
#: wrong shape and well-shaped ones of wrong types addressed to the running call.
FORGE_IOPUB = """\
kernel = get_ipython().kernel
session = kernel.session
parent = kernel.get_parent('shell')['header']
def forge(header, content, parent_header=parent, raw=None):
    parts = [session.pack(header), session.pack(parent_header), b'{}',
             raw if raw is not None else session.pack(content)]
    frames = [b'kernel.forged', b'<IDS|MSG>', session.sign(parts), *parts]
    kernel.iopub_socket.send_multipart(frames)
forge({'msg_id': 'a', 'msg_type': 7}, {})
forge({'msg_id': 'b'}, {})
forge({'msg_id': 'c', 'msg_type': 'stream'}, '[1, 2]')
forge({'msg_id': 'd', 'msg_type': 'stream'}, None, raw=b'\\xff not json')
forge({'msg_id': 'e', 'msg_type': 'stream'}, {'name': 5, 'text': None})
forge({'msg_id': 'f', 'msg_type': 'execute_result'}, {'data': 'not a dict'})
forge({'msg_id': 'g', 'msg_type': 'display_data'}, {'data': {'text/plain': 7}})
forge({'msg_id': 'h', 'msg_type': 'error'}, {'ename': None})
forge({'msg_id': 'i', 'msg_type': 'stream'}, {}, parent_header='not a dict')
print('after forging')
6 * 7
"""


async def test_kernel_is_unprivileged_and_refused_the_escape_calls(
    attacker: Client[Any],
) -> None:
    """Class 11: not root, no capabilities, no_new_privs; ptrace, unshare, mount: EPERM."""
    result = await run(attacker, IDENTITY_AND_CALLS)
    identity, calls = result["stdout"].splitlines()
    uid, caps, no_new_privs = identity.split()
    assert int(uid) != 0
    assert (caps, no_new_privs) == ("0", "1")
    assert calls.split() == ["EPERM", "EPERM", "EPERM"]
    enforced = (await call(attacker, "health_check"))["limits"]["enforced"]
    assert enforced["seccomp"] is True


async def test_forged_iopub_messages_are_dropped_and_the_call_goes_on(
    attacker: Client[Any], target: suite.Target
) -> None:
    """Class 10: kernel code holds the key, so it can sign garbage; the reader drops it."""
    before = target.server.log().count(DROPPED)
    result = await run(attacker, FORGE_IOPUB)
    assert result["status"] == "ok", result.get("error")
    assert "after forging" in result["stdout"]
    assert result["result"] == "42"
    # The session's reader is alive for the next call too.
    again = await run(attacker, "print('next')")
    assert again["stdout"] == "next\n"
    # The forged messages did reach the server, which dropped and logged them (a, b, c, d).
    for _ in range(200):  # the log is written by the server process: poll, at most 10 s
        if target.server.log().count(DROPPED) >= before + 4:
            break
        await anyio.sleep(0.05)
    assert target.server.log().count(DROPPED) >= before + 4, target.server.log()[-2000:]


async def test_tmpfs_is_counted_in_the_memory_limit(attacker: Client[Any]) -> None:
    """Class 5: /dev/shm and /tmp together cannot hold the memory limit."""
    enforced = (await call(attacker, "health_check"))["limits"]["enforced"]
    assert enforced["memory_limit_by"] in ("cgroup", "rlimit+tmpfs-size")
    await run(attacker, "kept = 1")
    steps = LIMIT_MB // 8  # each folder alone could take the whole limit
    result = await run(attacker, FILL_TMPFS.format(steps=steps), timeout=60)
    lines = result["stdout"].split("\n")
    written = max((int(line) for line in lines if line.isdigit()), default=0)
    assert written < LIMIT_MB, result
    if result["status"] == "ok":  # refused by a full tmpfs: the kernel lives
        assert any(line.startswith("refused") for line in lines), result
    else:  # the cgroup's out-of-memory kill: a fresh kernel replaces it
        assert result["error"]["code"] in ("KERNEL_DIED", "MEMORY_LIMIT_EXCEEDED"), result
        assert result["kernel_restarted"] is True
