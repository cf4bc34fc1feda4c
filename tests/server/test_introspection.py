"""code_completion, inspect_object and list_variables through the MCP client, real kernels."""

from __future__ import annotations

import asyncio
from typing import Any

from fastmcp import Client

from tests.helpers import call, run, tool_error


async def test_completion_uses_live_variables_and_gives_types(client: Client[Any]) -> None:
    await run(client, "import json\nrecords_total = 3\nrecords_seen = 1")
    done = await call(client, "code_completion", code="records_")
    assert set(done["matches"]) >= {"records_total", "records_seen"}
    assert (done["cursor_start"], done["cursor_end"]) == (0, len("records_"))
    done = await call(client, "code_completion", code="json.lo")
    assert {"load", "loads"} <= set(done["matches"])
    kinds = {item["text"]: item["type"] for item in done["types"]}
    assert kinds["loads"] == "function"
    assert done["session_id"] == "default"


async def test_completion_at_a_cursor_inside_the_code(client: Client[Any]) -> None:
    code = "import os\nos.pa + 1"
    done = await call(client, "code_completion", code=code, cursor_pos=len("import os\nos.pa"))
    assert "path" in done["matches"]
    assert done["cursor_start"] == len("import os\nos.")
    assert done["cursor_end"] == len("import os\nos.pa")


async def test_cursor_outside_the_code_is_refused(client: Client[Any]) -> None:
    text = await tool_error(client, "code_completion", {"code": "abc", "cursor_pos": 4})
    assert text.startswith("INVALID_INPUT:")
    text = await tool_error(client, "inspect_object", {"code": "abc", "cursor_pos": -1})
    assert text.startswith("INVALID_INPUT:")


async def test_inspect_gives_plain_docs(client: Client[Any]) -> None:
    await run(client, "def area(w, h):\n    'Area of a w by h rectangle.'\n    return w * h")
    found = await call(client, "inspect_object", code="area")
    assert found["found"] is True
    assert "Area of a w by h rectangle." in found["text"]
    assert "area(w, h)" in found["text"]
    assert "\x1b" not in found["text"]
    builtin = await call(client, "inspect_object", code="len(x", cursor_pos=2)
    assert "Return the number of items" in builtin["text"]
    assert "\x1b" not in builtin["text"]
    detailed = await call(client, "inspect_object", code="area", detail_level=1)
    assert "return w * h" in detailed["text"]
    missing = await call(client, "inspect_object", code="no_such_name_here")
    assert missing == {"found": False, "text": "", "session_id": "default"}


async def test_list_variables_shows_user_values_only(client: Client[Any]) -> None:
    code = (
        "import os, json\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "from json import dumps\n"
        "from collections import OrderedDict\n"
        "count = 42\n"
        "name = 'x' * 1000\n"
        "items = list(range(10))\n"
        "arr = np.zeros((3, 4))\n"
        "df = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\n"
        "_hidden = 1\n"
        "def helper(v):\n    return v\n"
        "class Point:\n    pass\n"
        "p = Point()\n"
        "1 + 1"
    )
    await run(client, code)
    listing = await call(client, "list_variables")
    by_name = {v["name"]: v for v in listing["variables"]}
    assert set(by_name) == {"count", "name", "items", "arr", "df", "helper", "Point", "p"}
    assert by_name["count"] == {
        "name": "count",
        "type": "int",
        "repr": "42",
        "shape": None,
        "length": None,
    }
    assert len(by_name["name"]["repr"]) <= 200
    assert by_name["name"]["length"] == 1000
    assert by_name["items"]["length"] == 10
    assert by_name["arr"]["shape"] == [3, 4]
    assert by_name["arr"]["type"] == "numpy.ndarray"
    assert by_name["df"]["shape"] == [2, 2]
    assert by_name["df"]["type"].startswith("pandas.")
    assert by_name["df"]["type"].endswith(".DataFrame")
    assert by_name["helper"]["type"] == "function"
    assert by_name["p"]["type"] == "Point"
    assert listing["total"] == 8
    assert listing["truncated"] is False


async def test_list_variables_leaves_no_trace(client: Client[Any]) -> None:
    await run(client, "a = 1\na")
    # every name but the per-cell input copies (_i, _ii, _i<n>), and the output history
    look = "print(sorted(n for n in dir() if not n.startswith('_i')), len(Out), repr(_))"
    before = await run(client, look)
    await call(client, "list_variables")
    await call(client, "code_completion", code="a")
    await call(client, "inspect_object", code="a")
    after = await run(client, look)
    assert after["stdout"] == before["stdout"]
    assert "'_'" in before["stdout"]
    assert before["stdout"].endswith(" 1 1\n")  # Out holds a's value; _ is still 1
    listing = await call(client, "list_sessions")
    assert listing["sessions"][0]["execution_count"] == 3  # a = 1, look, look


async def test_a_broken_repr_does_not_break_the_listing(client: Client[Any]) -> None:
    await run(
        client, "class Bad:\n    def __repr__(self):\n        raise RuntimeError('no')\nb = Bad()"
    )
    listing = await call(client, "list_variables")
    by_name = {v["name"]: v for v in listing["variables"]}
    assert by_name["b"]["repr"].startswith("<Bad instance at ")
    assert by_name["b"]["type"] == "Bad"


async def test_introspection_of_unknown_session(client: Client[Any]) -> None:
    for tool, args in (
        ("code_completion", {"code": "a"}),
        ("inspect_object", {"code": "a"}),
        ("list_variables", {}),
    ):
        text = await tool_error(client, tool, {**args, "session_id": "nobody"})
        assert text.startswith("SESSION_NOT_FOUND:"), tool


async def test_answers_stay_matched_while_other_tools_use_the_session(
    client: Client[Any],
) -> None:
    """Completions, inspections, listings and executions in flight together on one session:
    each reply is the answer to its own request."""
    await run(client, "import json, os\nalpha_value = 1\nbeta_value = 2")
    slow = asyncio.create_task(
        run(client, "import time\ntime.sleep(1)\ngamma_value = 3\nprint('slow done')")
    )
    calls: list[tuple[str, Any]] = []
    for round_ in range(4):
        calls += [
            ("alpha", call(client, "code_completion", code="alpha_")),
            ("beta", call(client, "code_completion", code="beta_")),
            ("json", call(client, "code_completion", code="json.du")),
            ("os", call(client, "code_completion", code="os.pat")),
            ("inspect", call(client, "inspect_object", code="json.dumps")),
            ("vars", call(client, "list_variables")),
            ("run", run(client, f"print({round_} * 10)")),
        ]
    answers = await asyncio.gather(*(coro for _, coro in calls))
    slow_result = await slow
    assert slow_result["stdout"] == "slow done\n"
    for (kind, _), answer in zip(calls, answers, strict=True):
        if kind == "alpha":
            assert answer["matches"] == ["alpha_value"]
        elif kind == "beta":
            assert answer["matches"] == ["beta_value"]
        elif kind == "json":
            assert set(answer["matches"]) == {"dump", "dumps"}
        elif kind == "os":
            assert "path" in answer["matches"]
            assert all(m.startswith("pat") for m in answer["matches"])
        elif kind == "inspect":
            assert answer["found"] is True
            assert "Serialize" in answer["text"]
        elif kind == "vars":
            names = {v["name"] for v in answer["variables"]}
            assert {"alpha_value", "beta_value"} <= names
        else:
            assert answer["status"] == "ok"
    printed = sorted(a["stdout"] for (k, _), a in zip(calls, answers, strict=True) if k == "run")
    assert printed == ["0\n", "10\n", "20\n", "30\n"]
    # the slow cell's variable is visible once it finished
    after = await call(client, "code_completion", code="gamma_")
    assert after["matches"] == ["gamma_value"]
