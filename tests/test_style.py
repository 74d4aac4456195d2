"""House-style checks that pay for themselves (STYLE.md 1, 2, 4, 6, 7, 15)."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORE = ROOT / "levered_core"
COMMAND_BASES = {"Command", "Lister", "ShowOne"}
MAX_MODULE_LINES = 500


def python_files(*roots: pathlib.Path) -> list[pathlib.Path]:
    return [p for root in roots for p in root.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts]


def command_classes() -> list[tuple[pathlib.Path, ast.ClassDef]]:
    found = []
    for path in python_files(ROOT / "plugins", CORE / "builtin"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases} \
                    & COMMAND_BASES:
                found.append((path, node))
    return found


@pytest.mark.parametrize("path,node", command_classes(), ids=lambda v: getattr(v, "name", ""))
def test_a_command_is_one_small_class_with_a_help_line(path, node):
    doc = ast.get_docstring(node)
    assert doc, f"{node.name} has no docstring"
    first = doc.splitlines()[0]
    assert len(first) <= 60 and not first.endswith("."), f"{node.name}: {first!r}"
    assert node.end_lineno - node.lineno + 1 <= 60, f"{node.name} is longer than 60 lines"
    methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    assert methods <= {"get_parser", "take_action"}, f"{node.name} has {methods}"


def test_there_are_command_classes_to_check():
    assert len(command_classes()) >= 4


def test_modules_stay_small():
    roots = [CORE, ROOT / "plugins", ROOT / "server" / "levered_server"]
    too_big = {str(p.relative_to(ROOT)): n for p in python_files(*[r for r in roots if r.exists()])
               if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert too_big == {}


def test_the_core_names_no_plugin():
    plugin_packages = {p.name for d in (ROOT / "plugins").iterdir() for p in d.glob("levered_*") if p.is_dir()}
    assert plugin_packages
    for path in python_files(CORE):
        text = path.read_text()
        assert not [name for name in plugin_packages if name in text], path


def test_entry_point_namespaces_are_spelled_only_in_plugin_api():
    for path in python_files(CORE, ROOT / "plugins"):
        if path.name == "plugin_api.py":
            continue
        text = path.read_text()
        assert "levered.groups.v1" not in text and "levered.commands.v1" not in text, path
