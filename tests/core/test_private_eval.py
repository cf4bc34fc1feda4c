"""The probe's answers survive the kernel's repr without a full literal parse."""

from __future__ import annotations

import json

import pytest

from python_mcp_server.core.execution import kernel_probe
from python_mcp_server.core.execution.private_eval import probe_expression, unrepr


@pytest.mark.parametrize(
    "answer",
    [
        {"kept": ["a"], "not_kept": [["g", "cannot pickle 'generator' object"]]},
        {"text": "quotes \" and ' and back\\slash and \n newline and ü and \x00"},
        {"payload": "QUJD" * 10_000},
    ],
)
def test_answers_round_trip_through_repr(answer: dict[str, object]) -> None:
    encoded = json.dumps(answer, ensure_ascii=True).replace("'", "\\u0027")
    assert json.loads(unrepr(repr(encoded))) == answer


def test_other_reprs_fall_back_to_a_literal_parse() -> None:
    assert unrepr('"it\'s"') == "it's"
    assert unrepr("('part one '\n 'part two')") == "part one part two"


def test_main_answers_in_the_fast_form_outside_ipython() -> None:
    text = kernel_probe.main(json.dumps({"action": "list_variables", "limit": 5}))
    assert "'" not in text
    assert json.loads(text) == {"variables": [], "total": 0}


def test_expression_binds_nothing_and_carries_the_source() -> None:
    expression = probe_expression("capture", {"max_bytes": 10})
    assert expression.startswith("(lambda g: ")
    assert "def capture" in expression
    compile(expression, "<probe>", "eval")
