"""``levered --version`` names every installed plugin; a core installed alone says what to add."""

from __future__ import annotations

import pathlib
import re
import sys

from levered_core import __version__, help

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILTIN = sorted(d.name for d in (ROOT / "plugins").glob("levered-*"))


def test_version_lists_the_core_every_plugin_distribution_and_python(cli, install_plugin):
    install_plugin("levered-acme", "[levered.commands.v1.optimizations_create]\nacme = acme_hook:Hook\n",
                   {"acme_hook.py": "class Hook: pass\n"}, version="2.3.4")
    run = cli("--version")
    assert run.exit_code == 0 and run.stderr == ""
    lines = run.stdout.splitlines()
    assert lines[0] == f"levered {__version__}"
    listed = dict(line.split(" ", 1) for line in lines[1:-1])
    assert {name: listed.get(name) for name in BUILTIN} == {name: __version__ for name in BUILTIN}
    assert listed["levered-server"] == __version__ and listed["levered-acme"] == "2.3.4"  # a hook-only plugin
    assert list(listed) == sorted(listed)
    assert re.fullmatch(rf"Python {re.escape(sys.version.split()[0])} \(.+\)", lines[-1])


def test_version_anywhere_on_the_line_prints_the_same(cli):
    assert cli("--debug", "--version").stdout == cli("--version").stdout


def manifest(*distributions: str, hooks: bool = False) -> dict:
    plugins = [{"group": f"g{i}", "distribution": name} for i, name in enumerate(distributions)]
    return {"groups": {}, "commands": {}, "plugins": plugins, "hooks": [{"name": "h"}] if hooks else []}


def test_help_names_levered_cli_only_when_nothing_but_the_core_is_installed():
    assert "levered plugins install levered-cli" in help.app_help(manifest("levered"), "usage: levered")
    for other in (manifest("levered", "levered-hello"), manifest("levered", hooks=True)):
        assert "levered-cli" not in help.app_help(other, "usage: levered")


def test_a_full_install_has_no_hint_even_with_plugins_disabled(cli):
    assert "levered-cli" not in cli("--help").stdout
    assert "levered-cli" not in cli("--help", env={"LEVERED_LOAD_PLUGINS": "plugins"}).stdout
