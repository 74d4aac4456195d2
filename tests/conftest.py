"""Fixtures shared by the CLI tests: a private LEVERED_HOME, installed test plugins, a stub API."""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from levered_core.testing import CliRun, run_cli
from tests.stub_api import StubAPI


@pytest.fixture
def home(tmp_path: pathlib.Path) -> pathlib.Path:
    """A LEVERED_HOME of the test's own (not created yet: the CLI creates it)."""
    return tmp_path / "levered-home"


@pytest.fixture
def plugin_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A directory put on the CLI's sys.path, where tests install plugin distributions."""
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture
def cli(home: pathlib.Path, plugin_dir: pathlib.Path, tmp_path: pathlib.Path) -> Callable[..., CliRun]:
    """Run the installed ``levered`` with the test's home, site config and plugin directory."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> CliRun:
        base = {"PYTHONPATH": str(plugin_dir), "LEVERED_SITE_CONFIG": str(tmp_path / "site-config.json")}
        return run_cli(*args, home=home, env={**base, **(env or {})}, input=input)

    return run


@pytest.fixture
def install_plugin(plugin_dir: pathlib.Path) -> Callable[..., pathlib.Path]:
    """Install a plugin distribution into ``plugin_dir`` the way pip lays one out.

    ``files`` maps paths relative to ``plugin_dir`` to their source; ``entry_points`` is
    the text of ``entry_points.txt``. Returns the ``.dist-info`` directory (delete it and
    the package to uninstall).
    """

    def install(name: str, entry_points: str, files: dict[str, str], version: str = "0.1.0") -> pathlib.Path:
        dist_info = plugin_dir / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist_info / "entry_points.txt").write_text(textwrap.dedent(entry_points).lstrip())
        for relative, source in files.items():
            target = plugin_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(source).lstrip())
        return dist_info

    return install


@pytest.fixture
def stub_api() -> Iterator[StubAPI]:
    """A real HTTP server on 127.0.0.1 answering scripted responses."""
    with StubAPI() as api:
        yield api


def groups_of(run: CliRun) -> dict[str, Any]:
    """Map group name to its plugin record from ``levered plugins list --json``."""
    return {plugin["group"]: plugin for plugin in run.json["plugins"]}
