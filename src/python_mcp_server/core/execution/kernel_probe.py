"""Code that runs INSIDE a kernel: list the user's variables, save and restore them.

The server never imports this module's functions to run them itself: ``probe_expression``
ships this file's source to the kernel as one user expression, which executes it in a
fresh private dict and calls ``main``. Nothing is bound in the user's namespace, nothing
is printed, and the answer comes back as a JSON string. Only the standard library (plus
IPython, and dill when the kernel's environment has it) may be used here, and the syntax
must suit every Python a kernel may run (3.10+).
"""

from __future__ import annotations

import base64
import json
import pickle
import reprlib
import types
from typing import Any

#: Longest short repr of a variable.
REPR_CHARS = 200
#: Names IPython puts in every namespace; skipped even when shadowed by the user.
IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})

_MISSING = object()


def _user_namespace() -> tuple[dict[str, Any], dict[str, Any]]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:  # not inside IPython: nothing to look at
        return {}, {}
    return shell.user_ns, shell.user_ns_hidden


def _is_user_name(name: str, value: Any, hidden: dict[str, Any]) -> bool:
    """Skip _private names, IPython's own entries and what was there at start-up."""
    if name.startswith("_") or name in IPYTHON_NAMES:
        return False
    return value is not hidden.get(name, _MISSING)


def _is_library_object(value: Any) -> bool:
    """Modules, and functions or classes defined outside the user's code."""
    if isinstance(value, types.ModuleType):
        return True
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return getattr(value, "__module__", None) not in ("__main__", None)
    return False


def _short_repr(value: Any) -> str:
    shortener = reprlib.Repr()
    shortener.maxstring = REPR_CHARS
    shortener.maxother = REPR_CHARS
    shortener.maxlist = shortener.maxtuple = shortener.maxset = 20
    shortener.maxdict = 10
    try:
        text = shortener.repr(value)
    except Exception as exc:  # a broken __repr__ must not break the listing
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= REPR_CHARS else text[: REPR_CHARS - 3] + "..."


def _shape(value: Any) -> list[int] | None:
    if isinstance(value, type):
        return None
    try:
        shape = getattr(value, "shape", None)
    except Exception:
        return None
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return list(shape)
    return None


def _length(value: Any) -> int | None:
    if isinstance(value, type) or not hasattr(type(value), "__len__"):
        return None
    try:
        return len(value)
    except Exception:
        return None


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return (
        kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"
    )


def list_variables(limit: int) -> dict[str, Any]:
    """The user's variables: name, type, short repr, shape or length."""
    namespace, hidden = _user_namespace()
    found = []
    names = sorted(n for n, v in list(namespace.items()) if _is_user_name(n, v, hidden))
    for name in names:
        value = namespace[name]
        if _is_library_object(value):
            continue
        found.append(
            {
                "name": name,
                "type": _type_name(value),
                "repr": _short_repr(value),
                "shape": _shape(value),
                "length": _length(value),
            }
        )
    return {"variables": found[:limit], "total": len(found)}


def _pickler() -> tuple[Any, str]:
    try:
        import dill

        return dill, "dill"
    except ImportError:  # an environment without dill still keeps plain data
        return pickle, "pickle"


def _size_hint(value: Any) -> int:
    nbytes = getattr(value, "nbytes", None)
    return nbytes if isinstance(nbytes, int) else 0


def capture(max_bytes: int) -> dict[str, Any]:
    """Pickle every user variable that can be; say why the others cannot."""
    namespace, hidden = _user_namespace()
    dumper, pickler_name = _pickler()
    blobs: dict[str, bytes] = {}
    not_kept: list[list[str]] = []
    total = 0
    for name in sorted(n for n, v in list(namespace.items()) if _is_user_name(n, v, hidden)):
        value = namespace[name]
        if _size_hint(value) > max_bytes - total:
            not_kept.append([name, _too_large(_size_hint(value), max_bytes)])
            continue
        try:
            blob = dumper.dumps(value)
        except Exception as exc:
            not_kept.append([name, f"cannot be pickled: {type(exc).__name__}: {exc}"[:300]])
            continue
        if total + len(blob) > max_bytes:
            not_kept.append([name, _too_large(len(blob), max_bytes)])
            continue
        blobs[name] = blob
        total += len(blob)
    payload = base64.b64encode(pickle.dumps(blobs, protocol=4)).decode("ascii")
    return {
        "payload": payload,
        "kept": sorted(blobs),
        "not_kept": not_kept,
        "size": total,
        "pickler": pickler_name,
    }


def _too_large(size: int, max_bytes: int) -> str:
    return f"too large for the snapshot ({size} bytes; {max_bytes} bytes in all may be kept)"


def restore(payload: str) -> dict[str, Any]:
    """Load saved variables into the user's namespace; say which could not be loaded."""
    namespace, _hidden = _user_namespace()
    loader, _name = _pickler()
    blobs: dict[str, bytes] = pickle.loads(base64.b64decode(payload))
    restored: list[str] = []
    failed: list[list[str]] = []
    for name, blob in sorted(blobs.items()):
        try:
            namespace[name] = loader.loads(blob)
        except Exception as exc:
            failed.append([name, f"could not be restored: {type(exc).__name__}: {exc}"[:300]])
            continue
        restored.append(name)
    return {"restored": restored, "failed": failed}


def main(request: str) -> str:
    """Entry point in the kernel: a JSON request in, a JSON answer out."""
    args = json.loads(request)
    action = args.pop("action")
    if action == "list_variables":
        answer = list_variables(**args)
    elif action == "capture":
        answer = capture(**args)
    elif action == "restore":
        answer = restore(**args)
    else:
        raise ValueError(f"unknown probe action {action!r}")
    # ASCII only and no single quote: the kernel's repr of this text is then the text
    # between quotes with backslashes doubled, which the server undoes without parsing.
    return json.dumps(answer, ensure_ascii=True).replace("'", "\\u0027")
