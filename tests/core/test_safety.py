"""The advisory safety check: what it finds, where, and how it judges."""

from __future__ import annotations

import pytest

from python_mcp_server.core.safety.checker import (
    REMEMBERED_CODE_CHARS,
    REMEMBERED_REPORTS,
    SafetyHook,
    SafetyPolicy,
    check_code_safety,
)


def findings(code: str) -> list[tuple[str, str, str]]:
    return [(w.category, w.severity, w.message) for w in check_code_safety(code).warnings]


@pytest.mark.parametrize(
    ("code", "category", "fragment"),
    [
        ("import os\nos.system('ls')", "dangerous_call", "os.system() runs a shell command"),
        ("import os as o\no.popen('ls')", "dangerous_call", "os.popen()"),
        ("from os import system as s\ns('ls')", "dangerous_call", "os.system()"),
        ("import posix\nposix.system('ls')", "dangerous_call", "os.system()"),
        ("import subprocess as sp\nsp.run(['ls'])", "dangerous_call", "subprocess.run()"),
        ("from subprocess import *\ncheck_output(['ls'])", "dangerous_call", "check_output"),
        ("import os\nos.execvp('sh', ['sh'])", "dangerous_call", "os.execvp()"),
        ("import ctypes\nctypes.CDLL(None)", "dangerous_call", "ctypes.CDLL()"),
        ("eval(user_input)", "dangerous_call", "eval() runs code built at run time"),
        ("exec(source)", "dangerous_call", "exec()"),
        ("compile(src, 'f', 'exec')", "dangerous_call", "compile()"),
        ("__import__('os').system('id')", "dangerous_call", "os.system()"),
        ("import importlib\nimportlib.import_module('os').system('x')", "dangerous_call", "os."),
        ("import os\ngetattr(os, 'system')('id')", "dangerous_call", "os.system()"),
        ("!ls -la", "dangerous_call", "get_ipython().system()"),
        ("files = !ls", "dangerous_call", "get_ipython().getoutput()"),
        ("%%bash\necho hi\n", "dangerous_call", "%bash runs a shell script"),
        ("getattr(__builtins__, 'ex' + 'ec')('1')", "obfuscation", "getattr() on the builtins"),
        ("import builtins\ngetattr(builtins, name)", "obfuscation", "getattr() on the builtins"),
        ("import os\ngetattr(os, name)('x')", "obfuscation", "computed attribute name"),
        ("__builtins__['exec']('1')", "obfuscation", "indexing the builtins"),
        ("globals()['__builtins__']", "obfuscation", "looks a name up by string"),
        ("import base64\nexec(base64.b64decode('cHJpbnQoMSk='))", "obfuscation", "decoded"),
        ("import codecs\neval(codecs.decode('cevag(1)', 'rot13'))", "obfuscation", "decoded"),
        ("p = bytes.fromhex('7072696e74283129').decode()\nexec(p)", "obfuscation", "decoded"),
        ("exec(''.join(chr(c) for c in [112, 114]))", "obfuscation", "decoded"),
        ("exec('tnirp'[::-1])", "obfuscation", "decoded"),
        ("__import__(name)", "obfuscation", "imports a computed module name"),
        ("().__class__.__bases__[0].__subclasses__()", "obfuscation", "__subclasses__"),
        ("f.__globals__['x']", "obfuscation", "__globals__"),
        ("import socket", "dangerous_module", "imports socket"),
        ("import ctypes.util", "dangerous_module", "imports ctypes"),
        ("from shutil import rmtree", "dangerous_module", "imports shutil"),
    ],
)
def test_finds(code: str, category: str, fragment: str) -> None:
    found = findings(code)
    assert any(c == category and fragment in m for c, _, m in found), found


@pytest.mark.parametrize(
    "code",
    [
        "x = 1 + 2\nprint(x)",
        "import numpy as np\nimport pandas as pd\ndf = pd.DataFrame({'a': np.arange(3)})\ndf",
        "import re\nre.compile(r'\\d+').findall('a1b22')",
        "import json, math\njson.dumps({'pi': math.pi})",
        "df.eval('a + b')",  # a method named eval on some object is not the builtin
        "def f(x):\n    return x * 2\n[f(i) for i in range(3)]",
        "%timeit sum(range(10))",
        "with open('data.csv', 'w') as f:\n    f.write('a,b\\n')",
    ],
)
def test_ordinary_code_is_safe_and_quiet(code: str) -> None:
    report = check_code_safety(code)
    assert report.is_safe
    assert report.warnings == []


@pytest.mark.parametrize(
    ("code", "is_safe"),
    [
        ("import os\nos.path.join('a', 'b')", True),  # low: importing os is common
        ("import os\nos.remove('x')", True),  # medium: deleting a file
        ("import subprocess", True),  # medium: the import alone
        ("import subprocess\nsubprocess.run(['ls'])", False),
        ("import ctypes", False),  # high: native code
        ("exec('x = 1')", True),  # medium: a literal string, checked in turn
        ("exec('import os; os.system(\"id\")')", False),  # ...and found unsafe inside
    ],
)
def test_severity_decides_is_safe(code: str, is_safe: bool) -> None:
    assert check_code_safety(code).is_safe is is_safe


def test_positions_are_one_based_lines_and_zero_based_columns() -> None:
    code = "x = 1\nif x:\n    import os\n    y = os.system('id')\n"
    warnings = check_code_safety(code).warnings
    by_category = {w.category: w for w in warnings}
    assert (by_category["dangerous_module"].line, by_category["dangerous_module"].col) == (3, 4)
    assert (by_category["dangerous_call"].line, by_category["dangerous_call"].col) == (4, 8)
    assert by_category["dangerous_call"].severity == "high"


def test_string_code_findings_point_at_the_exec_call() -> None:
    warnings = check_code_safety("a = 1\nexec('import subprocess\\nsubprocess.call(1)')").warnings
    inner = [w for w in warnings if w.message.startswith("in a string:")]
    assert inner
    assert {w.line for w in inner} == {2}
    assert any("subprocess.call()" in w.message and w.severity == "high" for w in inner)


def test_code_that_does_not_parse_is_reported_not_raised() -> None:
    report = check_code_safety("def broken(:\n    pass")
    assert report.is_safe  # the kernel will refuse it anyway
    assert [(w.category, w.severity, w.line) for w in report.warnings] == [("syntax", "low", 1)]


def test_code_too_deep_to_check_is_unsafe_rather_than_a_crash() -> None:
    report = check_code_safety("x = " + "+".join(["a"] * 5000))
    assert not report.is_safe
    assert [(w.category, w.message) for w in report.warnings] == [
        ("obfuscation", "the code is nested too deeply to check")
    ]


def test_duplicates_are_reported_once() -> None:
    warnings = check_code_safety("import os\nos.system('a'); os.system('b')").warnings
    calls = [w for w in warnings if w.category == "dangerous_call"]
    assert len(calls) == 2  # two calls at two columns
    assert len({(w.line, w.col) for w in calls}) == 2


def test_the_hook_remembers_reports_of_short_codes_only_and_only_the_newest() -> None:
    hook = SafetyHook(SafetyPolicy("warn"))
    unsafe = "import os\nos.system('ls')"
    first = hook.report(unsafe)
    assert first == check_code_safety(unsafe)
    assert not first.is_safe
    assert hook.report(unsafe) is first  # not parsed again
    long_code = "x = 1\n" * (REMEMBERED_CODE_CHARS // 6 + 1)
    assert hook.report(long_code) is not hook.report(long_code)
    for index in range(REMEMBERED_REPORTS):
        hook.report(f"x = {index}")
    assert hook.report(unsafe) is not first  # pushed out by newer codes: checked again
    assert hook.report(unsafe) == first
    assert len(hook._reports) == REMEMBERED_REPORTS
