"""The tables the safety check reads: which calls, modules and attributes are risky, and why.

Names are qualified the way the checker resolves them: ``os.system`` whatever ``os`` was
imported as, ``builtins.exec`` for the builtins, ``ipython.system`` for ``!cmd`` lines.
A table entry is ``(severity, message)``; ``high`` makes code unsafe.
"""

from __future__ import annotations

from typing import Literal

Severity = Literal["low", "medium", "high"]
Rule = tuple[Severity, str]

#: Modules another name stands for (``posix.system`` is ``os.system``).
MODULE_ALIASES: dict[str, str] = {"posix": "os", "nt": "os", "__builtin__": "builtins"}

#: Importing these is worth a note; the severity says how much.
DANGEROUS_MODULES: dict[str, Rule] = {
    "os": ("low", "operating-system access: files, processes, environment"),
    "sys": ("low", "interpreter internals"),
    "shutil": ("low", "copies, moves and deletes file trees"),
    "signal": ("low", "process signals"),
    "importlib": ("low", "imports modules by computed names"),
    "multiprocessing": ("low", "starts processes"),
    "pickle": ("low", "unpickling untrusted data runs code"),
    "resource": ("low", "process resource limits"),
    "builtins": ("medium", "reaches the builtins directly, a common obfuscation"),
    "subprocess": ("medium", "starts processes and shell commands"),
    "socket": ("medium", "raw network access"),
    "pty": ("medium", "pseudo-terminals and spawned shells"),
    "marshal": ("medium", "loads raw code objects"),
    "ctypes": ("high", "calls native code and reads or writes raw memory"),
    "cffi": ("high", "calls native code"),
    "_posixsubprocess": ("high", "the private process-spawning primitive"),
}

#: Calls by exact qualified name.
DANGEROUS_CALLS: dict[str, Rule] = {
    "builtins.exec": ("high", "runs code built at run time"),
    "builtins.eval": ("high", "runs code built at run time"),
    "builtins.compile": ("high", "builds code at run time"),
    "builtins.__import__": ("high", "imports a module by a computed name"),
    "builtins.breakpoint": ("low", "opens a debugger"),
    "os.system": ("high", "runs a shell command"),
    "os.popen": ("high", "runs a shell command"),
    "os.fork": ("high", "starts a process"),
    "os.forkpty": ("high", "starts a process"),
    "os.kill": ("high", "signals other processes"),
    "os.killpg": ("high", "signals process groups"),
    "os.posix_spawn": ("high", "starts a process"),
    "os.posix_spawnp": ("high", "starts a process"),
    "os.remove": ("medium", "deletes a file"),
    "os.unlink": ("medium", "deletes a file"),
    "os.rmdir": ("medium", "deletes a folder"),
    "os.removedirs": ("medium", "deletes folders"),
    "os.chmod": ("medium", "changes file permissions"),
    "os.chown": ("medium", "changes file ownership"),
    "os.setuid": ("high", "changes the process's user"),
    "os.setgid": ("high", "changes the process's group"),
    "os.getenv": ("low", "reads environment variables"),
    "os.putenv": ("low", "changes environment variables"),
    "shutil.rmtree": ("medium", "deletes a folder tree"),
    "shutil.chown": ("medium", "changes file ownership"),
    "pty.spawn": ("high", "runs a program on a terminal"),
    "pty.fork": ("high", "starts a process"),
    "socket.socket": ("medium", "opens a network socket"),
    "socket.create_connection": ("medium", "opens a network connection"),
    "socket.create_server": ("medium", "listens on the network"),
    "importlib.import_module": ("medium", "imports a module by name"),
    "importlib.__import__": ("high", "imports a module by a computed name"),
    "marshal.loads": ("high", "loads raw code objects"),
    "pickle.loads": ("medium", "runs code chosen by the data it unpickles"),
    "pickle.load": ("medium", "runs code chosen by the data it unpickles"),
    "dill.loads": ("medium", "runs code chosen by the data it unpickles"),
    "ipython.system": ("high", "runs a shell command (!command)"),
    "ipython.getoutput": ("high", "runs a shell command (!command)"),
    "sys.settrace": ("low", "hooks into every executed line"),
    "sys.setprofile": ("low", "hooks into every call"),
}

#: Calls by qualified-name prefix: every function of these starts processes or native code.
DANGEROUS_CALL_PREFIXES: dict[str, Rule] = {
    "os.exec": ("high", "replaces the kernel with another program"),
    "os.spawn": ("high", "starts a process"),
    "subprocess.": ("high", "starts a process"),
    "ctypes.": ("high", "calls native code"),
    "cffi.": ("high", "calls native code"),
    "_posixsubprocess.": ("high", "starts a process"),
    "multiprocessing.": ("low", "starts processes"),
}

#: Cell magics (``%%bash``) and line magics (``%sx``) that run shell code.
SHELL_MAGICS = frozenset(
    {"sh", "bash", "zsh", "script", "system", "sx", "perl", "ruby", "python2", "python3", "pypy"}
)

#: Attributes whose use is the classic way out of a restricted namespace.
ESCAPE_ATTRIBUTES = frozenset(
    {
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__code__",
        "__bases__",
        "__base__",
        "__mro__",
        "__closure__",
        "f_globals",
        "f_builtins",
        "f_back",
        "gi_frame",
        "cr_frame",
        "tb_frame",
    }
)

#: Calls that turn encoded data into text or bytes; fed to exec, they hide the code.
DECODERS = frozenset(
    {
        "base64.b64decode",
        "base64.b32decode",
        "base64.b16decode",
        "base64.b85decode",
        "base64.a85decode",
        "base64.decodebytes",
        "base64.urlsafe_b64decode",
        "base64.standard_b64decode",
        "codecs.decode",
        "binascii.unhexlify",
        "binascii.a2b_base64",
        "binascii.a2b_hex",
        "zlib.decompress",
        "bz2.decompress",
        "lzma.decompress",
        "gzip.decompress",
        "marshal.loads",
        "bytes.fromhex",
        "builtins.chr",
        "builtins.bytes",
        "builtins.bytearray",
    }
)

#: Method names that decode whatever they are called on (``data.decode()``).
DECODER_METHODS = frozenset({"decode", "fromhex", "translate"})

#: Functions that run or import what they are given: feeding them decoded data is hiding it.
CODE_SINKS = frozenset(
    {
        "builtins.exec",
        "builtins.eval",
        "builtins.compile",
        "builtins.__import__",
        "importlib.import_module",
        "os.system",
        "os.popen",
    }
)

#: Callables that expose a namespace as a dict: ``globals()['__builtins__']``.
NAMESPACE_CALLS = frozenset({"builtins.globals", "builtins.vars", "builtins.locals"})

#: Builtins the checker tracks by name (everything else is just a name).
TRACKED_BUILTINS = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "__import__",
        "getattr",
        "globals",
        "vars",
        "locals",
        "breakpoint",
        "chr",
        "bytes",
        "bytearray",
        "open",
    }
)


def call_rule(qualname: str) -> Rule | None:
    """The rule for a call to ``qualname``, exact names first, then prefixes."""
    rule = DANGEROUS_CALLS.get(qualname)
    if rule is not None:
        return rule
    for prefix, prefix_rule in DANGEROUS_CALL_PREFIXES.items():
        if qualname.startswith(prefix):
            return prefix_rule
    return None


def module_rule(module: str) -> Rule | None:
    """The rule for importing ``module`` (judged by its top-level package)."""
    top = module.split(".", 1)[0]
    return DANGEROUS_MODULES.get(MODULE_ALIASES.get(top, top))
