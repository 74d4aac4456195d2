"""``levered config list|get|set``: settings in ``$LEVERED_HOME/config.json``."""

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
