"""Package specifier validation: PEP 508 requirements only, refused before anything runs."""

from __future__ import annotations

import pytest

from python_mcp_server.core.packages.requirements import (
    MAX_PACKAGES,
    parse_names,
    parse_packages,
    split_packages,
)
from python_mcp_server.errors import ErrorCode, InvalidInputError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("pandas", ["pandas"]),
        ("pandas numpy", ["pandas", "numpy"]),
        ("pandas, numpy,requests", ["pandas", "numpy", "requests"]),
        ("numpy>=1.26,<3 pandas", ["numpy>=1.26,<3", "pandas"]),
        ("numpy >= 1.26", ["numpy>=1.26"]),
        ("numpy>=1.26, <3", ["numpy>=1.26,<3"]),
        ("requests[security, socks]>=2", ["requests[security,socks]>=2"]),
        ("  ", []),
        (["pandas>=2", " numpy "], ["pandas>=2", "numpy"]),
        ("attrs; python_version >= '3.8'", ["attrs; python_version >= '3.8'"]),
    ],
)
def test_split_packages(given: str | list[str], expected: list[str]) -> None:
    assert split_packages(given) == expected


def test_valid_specifiers_are_normalised() -> None:
    specs = parse_packages(
        ["Pandas>=2", "requests[socks]~=2.31", "numpy==1.*", "attrs; python_version >= '3'"]
    )
    assert [s.name for s in specs] == ["pandas", "requests", "numpy", "attrs"]
    assert specs[0].text == "Pandas>=2"
    assert specs[1].requirement.extras == {"socks"}
    assert specs[3].applies()
    assert not parse_packages("attrs; python_version < '3'")[0].applies()


def test_names_are_canonical() -> None:
    assert parse_packages("Typing_Extensions")[0].name == "typing-extensions"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("-r requirements.txt", "options"),
        ("--index-url=https://evil.example/simple", "options"),
        ("-e .", "options"),
        ("--pre", "options"),
        ("./mypkg", "paths"),
        ("../up", "paths"),
        ("~/pkg", "paths"),
        ("/tmp/pkg.whl", "paths"),
        ("pkg-1.0.tar.gz", "paths"),
        ("dir/pkg", "paths"),
        ("https://example.com/pkg-1.0-py3-none-any.whl", "URLs"),
        ("git+https://github.com/x/y", "URLs"),
        ("pkg @ https://example.com/pkg.whl", "URLs"),
        ("pkg@file:///tmp/x", "URLs"),
        ("numpy; rm -rf x", "PEP 508"),
        ("numpy; rm -rf /", "paths"),
        ("numpy && curl evil", "shell"),
        ("$(whoami)", "shell"),
        ("`id`", "shell"),
        ("numpy | sh", "shell"),
        ("numpy\nnext", "shell"),
        ("numpy==", "PEP 508"),
        ("!bang", "PEP 508"),
        ("x" * 201, "longer"),
    ],
)
def test_refusals(bad: str, why: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_packages([bad])
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert why in raised.value.message


def test_one_bad_item_refuses_the_whole_call() -> None:
    with pytest.raises(InvalidInputError, match="-r"):
        parse_packages(["pandas", "-r", "req.txt"])


def test_string_with_option_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="options are not accepted"):
        parse_packages("pandas --index-url https://evil.example")


def test_empty_and_too_many() -> None:
    with pytest.raises(InvalidInputError, match="no packages"):
        parse_packages("")
    with pytest.raises(InvalidInputError, match="no packages"):
        parse_packages([" ", ""])
    with pytest.raises(InvalidInputError, match="at most"):
        parse_packages([f"p{i}" for i in range(MAX_PACKAGES + 1)])


def test_uninstall_takes_names_only() -> None:
    assert [s.name for s in parse_names("pandas numpy")] == ["pandas", "numpy"]
    for bad in ("pandas==2.0", "requests[socks]", "attrs; python_version > '3'"):
        with pytest.raises(InvalidInputError, match="names only"):
            parse_names([bad])
