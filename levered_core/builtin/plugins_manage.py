"""``levered plugins install|uninstall``: pip, in the environment this CLI runs from."""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from typing import Any

from levered_core import manifest
from levered_core.command import Command
from levered_core.errors import LeveredError, UsageError
from levered_core.output import Result
from levered_core.plugins import CORE_DISTRIBUTION


def _pip(*args: str) -> None:
    # pip's own output goes to stderr so that stdout stays the command's result (and --json clean).
    done = subprocess.run([sys.executable, "-m", "pip", *args], stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise LeveredError(f"pip {args[0]} failed (exit {done.returncode}); its output is above")


def _groups_by_distribution() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for plugin in manifest.load(rebuild=True)["plugins"]:
        found.setdefault(str(plugin["distribution"]).lower(), []).append(plugin)
    return found


class InstallPlugin(Command):
    """Install plugin distributions (a path, a wheel or a name)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("packages", nargs="+", metavar="PACKAGE", help="what pip install accepts")
        parser.add_argument("-U", "--upgrade", action="store_true", help="upgrade if already installed")
        parser.add_argument("-e", "--editable", action="store_true", help="install a local path in editable mode")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        before = _groups_by_distribution()
        options = ["--upgrade"] if parsed_args.upgrade else []
        targets = [arg for path in parsed_args.packages for arg in (("-e", path) if parsed_args.editable else (path,))]
        _pip("install", "--disable-pip-version-check", *options, *targets)
        after = _groups_by_distribution()
        added = [p for dist, plugins in after.items() if dist not in before for p in plugins]
        lines = [f"Installed {p['group']} ({p['distribution']} {p['version']}): {p['status']}, "
                 f"{len(p['commands'])} commands" for p in added] or ["No new command group was installed"]
        return Result.text("\n".join(lines), {"installed": added})


class UninstallPlugin(Command):
    """Uninstall plugin distributions (never the core)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("distributions", nargs="+", metavar="DISTRIBUTION", help="e.g. levered-hello")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        known = _groups_by_distribution()
        for name in parsed_args.distributions:
            if name.lower().replace("_", "-") == CORE_DISTRIBUTION:
                raise UsageError("refusing to uninstall levered itself: it is the core every plugin needs")
            if name.lower() not in known:
                try:
                    importlib.metadata.distribution(name)
                except importlib.metadata.PackageNotFoundError:
                    raise UsageError(f"{name} is not installed") from None
                raise UsageError(f"{name} is not a levered plugin (it declares no command group)")
        _pip("uninstall", "--yes", "--disable-pip-version-check", *parsed_args.distributions)
        removed = [p for name in parsed_args.distributions for p in known[name.lower()]]
        lines = [f"Uninstalled {p['group']} ({p['distribution']})" for p in removed]
        manifest.load(rebuild=True)
        return Result.text("\n".join(lines), {"uninstalled": removed})
