"""Built-ins and examples use only the public plugin API, and every public name is documented.

The built-in groups are plugins like any other: what they need to render like a built-in is
public (``levered_core.plugin_api``, beside the documented ``errors`` and ``testing`` modules),
so a third-party plugin can do the same, and a private module cannot creep back into them.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from levered_core import plugin_api

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: The public modules, as docs/plugins.md lists them.
PUBLIC = {"levered_core.plugin_api", "levered_core.errors", "levered_core.testing"}
#: Private modules a built-in may still import, with why. Third-party plugins get none of these.
ALLOWED = {
    # `login`, `logout` and `auth status` own the stored sessions and the OAuth flows, and report
    # where `login` remembers the server (config's path and URL normalization).
    "levered_auth": {"levered_core.credentials", "levered_core.oauth", "levered_core.config"},
    # `config list|get|set` is the user interface of the config file itself.
    "levered_config": {"levered_core.config"},
}


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every ``levered_core`` module a file imports, at any depth (``TYPE_CHECKING`` and functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "levered_core":
            found |= {f"levered_core.{alias.name}" for alias in node.names}  # `from levered_core import x`
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {name for name in found if name == "levered_core" or name.startswith("levered_core.")}


def sources(top: str) -> list[pathlib.Path]:
    return sorted(path for path in (ROOT / top).rglob("*.py") if "build" not in path.relative_to(ROOT).parts)


@pytest.mark.parametrize("path", sources("plugins"), ids=lambda p: str(p.relative_to(ROOT / "plugins")))
def test_built_in_plugins_import_only_the_public_api(path):
    package = path.relative_to(ROOT / "plugins").parts[1]
    private = imported_modules(path) - PUBLIC - ALLOWED.get(package, set())
    assert not private, f"{path} imports private {sorted(private)}: re-export what it needs from plugin_api"


def test_the_examples_import_only_the_public_api():
    paths = sources("examples")
    assert paths
    for path in paths:
        assert imported_modules(path) <= PUBLIC, f"{path} imports private {sorted(imported_modules(path) - PUBLIC)}"


def test_the_checker_sees_every_import_form(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import levered_core.views\nfrom levered_core import humanize as h\n"
                    "def f():\n    from levered_core.shapes import optimization\n")
    assert imported_modules(path) == {"levered_core.views", "levered_core.humanize", "levered_core.shapes"}


def test_every_public_name_exists_and_is_documented():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert sorted(set(plugin_api.__all__)) == sorted(plugin_api.__all__), "a name is listed twice in __all__"
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name
    undocumented = [name for name in plugin_api.__all__ if f"`{name}" not in guide]
    assert undocumented == [], f"docs/plugins.md does not describe {undocumented}"


def test_every_lazy_name_is_public():
    assert set(plugin_api._LAZY) <= set(plugin_api.__all__)


def test_the_public_helpers_are_the_core_ones():
    from levered_core import humanize, shapes, views

    assert plugin_api.short_id is humanize.short_id
    assert plugin_api.flat_optimization is shapes.optimization
    assert plugin_api.results_text is views.results
