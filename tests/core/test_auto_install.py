"""Auto-install's reading of code: imports found with ast, mapped to distributions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from python_mcp_server.core.packages.auto_install import (
    distribution_for,
    find_imports,
    missing_modules,
)


def test_find_imports() -> None:
    code = """
import os, numpy as np
import xml.etree.ElementTree
from sklearn.model_selection import train_test_split
from . import sibling
from __future__ import annotations
%matplotlib inline
!pip list
def f():
    import cv2
try:
    import ujson as json
except ImportError:
    import json
try:
    import optional_thing
except (ModuleNotFoundError, OSError):
    pass
try:
    import required_thing
finally:
    pass
"""
    assert find_imports(code) == [
        "os",
        "numpy",
        "xml.etree.ElementTree",
        "sklearn.model_selection",
        "cv2",
        "json",
        "required_thing",
    ]


def test_unparsable_code_has_no_imports() -> None:
    assert find_imports("import (") == []


@pytest.mark.parametrize(
    ("module", "distribution"),
    [
        ("cv2", "opencv-python"),
        ("PIL.Image", "pillow"),
        ("sklearn.model_selection", "scikit-learn"),
        ("yaml", "pyyaml"),
        ("bs4", "beautifulsoup4"),
        ("dateutil.parser", "python-dateutil"),
        ("google.protobuf.message", "protobuf"),
        ("requests", "requests"),
        ("some_pkg.sub", "some_pkg"),
    ],
)
def test_distribution_for(module: str, distribution: str) -> None:
    assert distribution_for(module) == distribution


def test_missing_modules(tmp_path: Path) -> None:
    (tmp_path / "local_helper.py").write_text("X = 1\n")
    path = [str(tmp_path), *[p for p in sys.path if p]]
    modules = ["os.path", "sys", "local_helper", "pytest", "pmcp_surely_missing.sub"]
    assert missing_modules(modules, path) == ["pmcp_surely_missing.sub"]
