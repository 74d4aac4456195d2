"""``levered config list|get|set``: settings in ``$LEVERED_HOME/config.json``; ``levered env [use]``."""

from __future__ import annotations

import argparse

from levered_core import config
from levered_core.plugin_api import Cell, Command, Lister, Result, ShowOne


class ListConfig(Lister):
    """Print every setting with its effective value and source"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        settings = self.app.settings
        values = settings.effective()
        rows = [(key, Cell(value, config.dumps(value)), settings.source(key)) for key, value in values.items()]
        return Result(("Key", "Value", "Source"), rows, values)


class GetConfig(ShowOne):
    """Print the effective value of one setting"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("key", help=f"one of: {', '.join(config.KEYS)}")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        config.known_key(parsed_args.key)
        value = self.app.settings.get(parsed_args.key)
        return Result.text(config.dumps(value), {parsed_args.key: value})


class SetConfig(Command):
    """Set one setting; an empty value restores its default"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("key", help=f"one of: {', '.join(config.KEYS)}")
        parser.add_argument("value", help="the new value; '' removes the key")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        value = self.app.settings.set(parsed_args.key, parsed_args.value)
        text = f"{parsed_args.key} = {config.dumps(value)}"
        return Result.text(text, {parsed_args.key: value})


def _environment_view(settings: config.Settings) -> dict[str, object]:
    """The environment in force, where it comes from, and the API URL it gives."""
    return {"environment": settings.get("environment"), "source": settings.source("environment"),
            "api_url": settings.get("api_url"), "api_url_source": settings.source("api_url"),
            "environments": {name: config.DEFAULT_URLS[name] for name in config.ENVIRONMENTS}}


def _environment_text(view: dict[str, object]) -> str:
    lines = [f"Environment  {view['environment']} (from {view['source']})",
             f"API URL      {view['api_url']} (from {view['api_url_source']})"]
    if view["api_url_source"] == "env LEVERED_API_URL":
        lines.append("             (LEVERED_API_URL overrides the environment's URL)")
    elif view["api_url_source"] != "default":
        lines.append("             (api_url overrides the environment's URL; clear it with "
                     "`levered config set api_url ''`)")
    return "\n".join(lines)


class ShowEnv(Command):
    """Show the environment (prod, testing, local) and API URL"""

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        view = _environment_view(self.app.settings)
        return Result.text(_environment_text(view), view)


class UseEnv(Command):
    """Switch the environment (same as config set environment)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name", choices=config.ENVIRONMENTS, help="prod, testing or local")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        settings = self.app.settings
        settings.set("environment", parsed_args.name)  # the code path of `config set environment`
        view = _environment_view(settings)
        text = _environment_text(view)
        if view["source"] == "env LEVERED_ENV":
            text += (f"\nNote: LEVERED_ENV={view['environment']} is set in this shell and wins over the "
                     f"saved {parsed_args.name}")
        return Result.text(text, view)
