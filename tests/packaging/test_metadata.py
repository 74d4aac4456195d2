"""What every shipped distribution declares: one version, complete metadata, the plugin API range.

Read from the sources (setup.cfg, pyproject.toml), so these run in the default suite; the built
wheels themselves are installed and run by ``test_wheels.py``.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_dists", ROOT / "scripts" / "build_dists.py")
build_dists = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_dists)

DISTRIBUTIONS = build_dists.distributions()
PLUGINS = sorted((ROOT / "plugins").glob("levered-*"))
META = ROOT / "packaging" / "levered-cli"
SERVER = ROOT / "server"
CORE_SCRIPT = "levered = levered_core.main:main"


def config(directory: pathlib.Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(directory / "setup.cfg")
    return parser


def version_of(directory: pathlib.Path) -> str:
    """The version setup.cfg declares: a literal, or ``attr: package.__version__`` read without importing."""
    declared = config(directory)["metadata"]["version"].strip()
    if not declared.startswith("attr:"):
        return declared
    module, _, name = declared.removeprefix("attr:").strip().rpartition(".")
    tree = ast.parse((directory / module.replace(".", "/") / "__init__.py").read_text())
    return next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [getattr(t, "id", None) for t in node.targets] == [name] and isinstance(node.value, ast.Constant))


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


CORE_VERSION = version_of(ROOT)


def test_the_shipped_distributions_are_the_core_the_plugins_the_server_and_levered_cli():
    names = [config(d)["metadata"]["name"] for d in DISTRIBUTIONS]
    assert names == ["levered", *(d.name for d in PLUGINS), "levered-server", "levered-cli"]
    assert len(PLUGINS) == 8


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=lambda d: d.name)
def test_every_distribution_has_the_core_version(directory):
    assert version_of(directory) == CORE_VERSION, f"{directory.name}: versions move together"


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=lambda d: d.name)
def test_metadata_is_complete(directory):
    cfg = config(directory)
    meta = cfg["metadata"]
    for key in ("description", "long_description", "url", "project_urls", "author", "license_expression",
                "license_files", "classifiers"):
        assert meta.get(key, "").strip(), f"{directory.name}: [metadata] {key} is missing"
    assert len(meta["description"]) <= 100 and "\n" not in meta["description"].strip()
    if meta["long_description"].startswith("file:"):
        assert (directory / meta["long_description"].removeprefix("file:").strip()).is_file()
    assert meta["license_expression"] == "Apache-2.0" and (directory / meta["license_files"]).is_file()
    assert "Programming Language :: Python :: 3.11" in lines(meta["classifiers"])
    assert not [c for c in lines(meta["classifiers"]) if c.startswith("License ::")], "the expression says it"
    assert cfg["options"]["python_requires"] == ">=3.11"
    assert "python_requires" not in meta, "python_requires belongs in [options]"
    assert 'build-backend = "setuptools.build_meta"' in (directory / "pyproject.toml").read_text()


def test_every_distribution_points_to_the_same_places():
    urls = {(config(d)["metadata"]["url"], config(d)["metadata"]["project_urls"]) for d in DISTRIBUTIONS}
    assert len(urls) == 1


def levered_requirement(directory: pathlib.Path) -> str:
    requires = lines(config(directory)["options"].get("install_requires", ""))
    found = [r for r in requires if re.match(r"levered\s*[<>=!~]", r)]
    assert len(found) == 1, f"{directory.name} must require the core once: {requires}"
    return found[0].replace(" ", "")


@pytest.mark.parametrize("directory", [*PLUGINS, SERVER], ids=lambda d: d.name)
def test_each_plugin_pins_the_core_versions_that_load_plugin_api_v1(directory):
    """docs/plugins.md, Versions: every core below the next major loads the API a plugin was built for."""
    match = re.fullmatch(r"levered>=([\d.]+),<(\d+)", levered_requirement(directory))
    assert match, f"{directory.name}: write levered>=LOWEST,<NEXT_MAJOR"
    lowest, next_major = match[1], int(match[2])
    assert tuple(map(int, lowest.split("."))) <= tuple(map(int, CORE_VERSION.split(".")))
    assert next_major == int(CORE_VERSION.split(".")[0]) + 1


def test_levered_cli_installs_the_core_and_every_builtin_plugin_at_its_own_version():
    members = config(META)["levered_cli"]["members"].split()
    assert members == ["levered", *(d.name for d in PLUGINS)]
    assert "members" in (META / "setup.py").read_text() and "==" in (META / "setup.py").read_text()
    assert not lines(config(META)["options"].get("packages", "")), "levered-cli ships no code"


@pytest.mark.parametrize("directory", [ROOT, META, SERVER], ids=lambda d: d.name)
def test_pipx_exposes_levered_from_the_core_levered_cli_and_the_server(directory):
    scripts = lines(config(directory)["options.entry_points"]["console_scripts"])
    assert CORE_SCRIPT in scripts


def test_the_changelog_has_an_unreleased_section_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^]]+)\]", text, re.M)
    assert headings[0] == "Unreleased" and CORE_VERSION in headings
