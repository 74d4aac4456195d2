"""``levered plugins install|uninstall``: pip, in the environment this CLI runs from."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
from typing import Any

from levered_core import manifest
from levered_core.command import Command
from levered_core.errors import LeveredError, UsageError
from levered_core.output import Result
from levered_core.plugins import CORE_DISTRIBUTION, normalize


def _pip(*args: str) -> None:
    # pip's own output goes to stderr so that stdout stays the command's result (and --json clean).
    done = subprocess.run([sys.executable, "-m", "pip", *args], stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise LeveredError(f"pip {args[0]} failed (exit {done.returncode}); its output is above")


def _plugins_by_distribution() -> dict[str, list[dict[str, Any]]]:
    """Map each (normalised) distribution name to its command groups and command hooks."""
    data = manifest.load(rebuild=True)
    found: dict[str, list[dict[str, Any]]] = {}
    for kind, records in (("group", data["plugins"]), ("hook", data.get("hooks", []))):
        for record in records:
            found.setdefault(normalize(str(record["distribution"])), []).append({"kind": kind, **record})
    return found


def _describe(record: dict[str, Any], with_status: bool = True, was: str = "") -> str:
    if record["kind"] == "hook":
        what = f"hook {record['name']} on '{record['command']}'"
        status = f": {record['status']}"
    else:
        what = record["group"]
        status = f": {record['status']}, {len(record['commands'])} commands"
    version = f" {record['version']}{was}" if with_status else ""
    return f"{what} ({record['distribution']}{version}){status if with_status else ''}"


_REQUIREMENT = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^]]*\])?\s*([<>=!~].*)?")


def _requested_names(targets: list[str]) -> set[str]:
    """The distribution names a user typed, or that a wheel's file name says (paths say nothing)."""
    names = set()
    for target in targets:
        if target.endswith(".whl"):
            names.add(normalize(os.path.basename(target).split("-")[0]))
        elif not os.path.exists(target) and (match := _REQUIREMENT.fullmatch(target.strip())):
            names.add(normalize(match.group(1)))
    return names


def _required_plugins(name: str, plugins: set[str]) -> list[str]:
    """The plugin distributions that distribution ``name`` requires (a set of plugins, as levered-cli is)."""
    try:
        requires = importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return sorted({normalize(re.split(r"[\s;<>=!~(\[]", req, maxsplit=1)[0]) for req in requires} & plugins)


def _check_local_targets(targets: list[str], editable: bool) -> None:
    """Refuse, before pip runs, a path or wheel that does not exist (and, with -e, anything but a directory)."""
    for target in targets:
        if "://" in target:
            continue  # a URL (git+https://…): pip's to judge
        path = pathlib.Path(re.sub(r"\[[^]]*\]$", "", target)).expanduser()  # ./plugin[test]: extras
        if editable and not path.is_dir():
            raise UsageError(f"-e needs a project directory, and {target} is not one: drop -e to install a wheel "
                             "or a name")
        if (target.startswith((".", "/", "~")) or target.endswith(".whl")) and not path.exists():
            raise UsageError(f"no such file or directory: {target}; give a path that exists, a wheel, or a name on "
                             "the package index")


class InstallPlugin(Command):
    """Install plugin distributions (a path, a wheel or a name)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("packages", nargs="+", metavar="PACKAGE", help="what pip install accepts")
        parser.add_argument("-U", "--upgrade", action="store_true", help="upgrade if already installed")
        parser.add_argument("-e", "--editable", action="store_true", help="install a local path in editable mode")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        _check_local_targets(parsed_args.packages, parsed_args.editable)
        before = _plugins_by_distribution()
        options = ["--upgrade"] if parsed_args.upgrade else []
        targets = [arg for path in parsed_args.packages for arg in (("-e", path) if parsed_args.editable else (path,))]
        with tempfile.TemporaryDirectory() as scratch:
            report = pathlib.Path(scratch) / "report.json"
            _pip("install", "--disable-pip-version-check", "--report", str(report), *options, *targets)
            installed = json.loads(report.read_text(encoding="utf-8")).get("install", [])
        # What the user asked for: pip's requested items (paths included), or names already satisfied.
        requested = {normalize(i["metadata"]["name"]) for i in installed if i.get("requested")}
        requested |= _requested_names(parsed_args.packages)
        reinstalled = {normalize(item["metadata"]["name"]) for item in installed}
        after = _plugins_by_distribution()
        lines, reported = [], []
        for dist, records in sorted(after.items()):
            old, was = before.get(dist), ""
            if old is None:
                change = "installed"
            elif old[0]["version"] != records[0]["version"]:
                change, was = "upgraded", f", was {old[0]['version']}"
            elif dist in reinstalled:
                change = "reinstalled"
            elif dist in requested:
                change = "already installed"
            else:
                continue
            lines += [f"{change.capitalize()} {_describe(record, was=was)}" for record in records]
            reported += [{**record, "change": change} for record in records]
        for dist in sorted(requested - set(after)):
            bundled = _required_plugins(dist, set(after))
            lines.append(f"{dist} brings the plugins {', '.join(bundled)}" if bundled else
                         f"{dist} is not a levered plugin: it declares no command group and no command hook")
        return Result.text("\n".join(lines) or "No levered plugin was installed", {"installed": reported})


class UninstallPlugin(Command):
    """Uninstall plugin distributions (never the core)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("distributions", nargs="+", metavar="DISTRIBUTION", help="e.g. levered-hello")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        known = _plugins_by_distribution()
        for name in parsed_args.distributions:
            if normalize(name) == CORE_DISTRIBUTION:
                raise UsageError("refusing to uninstall levered itself: it is the core every plugin needs")
            if normalize(name) not in known:
                try:
                    importlib.metadata.distribution(name)
                except importlib.metadata.PackageNotFoundError:
                    raise UsageError(f"{name} is not installed (see `levered plugins list`)") from None
                raise UsageError(f"{name} is not a levered plugin (it declares no command group and no command "
                                 "hook); uninstall it with pip")
        _pip("uninstall", "--yes", "--disable-pip-version-check", *parsed_args.distributions)
        removed = [p for name in parsed_args.distributions for p in known[normalize(name)]]
        lines = [f"Uninstalled {_describe(p, with_status=False)}" for p in removed]
        manifest.load(rebuild=True)
        return Result.text("\n".join(lines), {"uninstalled": removed})
