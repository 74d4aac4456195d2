"""Base classes of every levered command: ``--json``, the API client, error mapping.

Subclasses implement ``get_parser`` (optionally) and ``take_action``, which returns a
:class:`~levered_core.output.Result`; the base class prints it as JSON (``--json`` or
config ``output: json``) or for people (cliff's formatters, so ``-f`` and ``-c`` keep
working on listers and show commands).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, cast

from cliff import command, lister, show

from levered_core import output
from levered_core.errors import APIError

if TYPE_CHECKING:
    from levered_core.app import LeveredApp
    from levered_core.client import LeveredClient


class _LeveredMixin:
    """What every levered command shares, whatever cliff base it has."""

    def _add_json_flag(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--json", action="store_true",
                            help="print the API object as JSON on stdout and nothing else")
        return parser

    @property
    def client(self) -> LeveredClient:
        """The API client, built on first use from flags, environment and config."""
        return self.levered_app.client

    @property
    def levered_app(self) -> LeveredApp:
        """The running :class:`~levered_core.app.LeveredApp` (settings, client, manifest)."""
        return cast("LeveredApp", self.app)  # type: ignore[attr-defined]  # set by cliff's Command

    def wants_json(self, parsed_args: argparse.Namespace) -> bool:
        """Decide between JSON and human output for this invocation."""
        app = self.levered_app
        if getattr(parsed_args, "json", False) or getattr(app.options, "json", False):
            return True
        explicit_format = getattr(parsed_args, "formatter", "table") != "table" or getattr(parsed_args, "columns", None)
        return not explicit_format and app.settings.get("output") == "json"

    def _take(self, parsed_args: argparse.Namespace) -> output.Result:
        try:
            result = self.take_action(parsed_args)  # type: ignore[attr-defined]  # cliff's abstract method
        except APIError as exc:
            if self.wants_json(parsed_args) and exc.body is not None:
                output.print_json(exc.body, self.levered_app.stdout)
            raise
        if not isinstance(result, output.Result):
            raise TypeError(f"{type(self).__name__}.take_action must return a levered_core.output.Result")
        return result


class Command(_LeveredMixin, command.Command):
    """A command whose output is a text for people and a JSON object for programs."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return self._add_json_flag(super().get_parser(prog_name))

    def run(self, parsed_args: argparse.Namespace) -> int:
        parsed_args = self._run_before_hooks(parsed_args)
        result = self._take(parsed_args)
        if self.wants_json(parsed_args):
            output.print_json(result.document, self.app.stdout)
        else:
            output.print_text(str(result.data), self.app.stdout)
        return self._run_after_hooks(parsed_args, 0)


class _Display(_LeveredMixin):
    """Shared ``run`` of Lister and ShowOne: JSON, or cliff's formatters."""

    _formatter_plugins: Any
    formatter: Any

    def run(self, parsed_args: argparse.Namespace) -> int:
        parsed_args = self._run_before_hooks(parsed_args)  # type: ignore[attr-defined]
        result = self._take(parsed_args)
        hooked = self._run_after_hooks(parsed_args, result)  # type: ignore[attr-defined]
        if not isinstance(hooked, output.Result):  # a hook returned cliff's plain pair
            hooked = output.Result(hooked[0], hooked[1], result.document)
        result = hooked
        if self.wants_json(parsed_args):
            output.print_json(result.document, self.levered_app.stdout)
        elif not result.data and parsed_args.formatter == "table":
            output.print_text("(none)", self.levered_app.stdout)  # cliff's table prints nothing at all
        else:
            self.formatter = self._formatter_plugins[parsed_args.formatter].obj
            self.produce_output(parsed_args, result.columns, result.data)  # type: ignore[attr-defined]
        return 0


class Lister(_Display, lister.Lister):
    """A command that lists objects: a table for people, the API list for ``--json``."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return self._add_json_flag(super().get_parser(prog_name))


class ShowOne(_Display, show.ShowOne):
    """A command that shows one object: field/value pairs, the API object for ``--json``."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return self._add_json_flag(super().get_parser(prog_name))
