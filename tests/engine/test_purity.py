"""The engine is pure numpy (STYLE.md 14, 15): its imports, no global seed, small modules."""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ENGINE = pathlib.Path(__file__).resolve().parents[2] / "server" / "levered_server" / "engine"
ALLOWED = {"numpy", "scipy", "__future__"} | set(sys.stdlib_module_names)
MODULES = sorted(ENGINE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_only_numpy_scipy_stdlib_and_the_engine(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in ALLOWED or name.startswith("levered_server.engine"), name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_global_seed_and_no_big_module(path):
    text = path.read_text()
    assert "random.seed" not in text
    assert len(text.splitlines()) <= 400
