"""Base classes of every levered command: ``--json``, the API client, error mapping.

Subclasses implement ``get_parser`` (optionally) and ``take_action``, which returns a
:class:`~levered_core.output.Result`; the base class prints it as JSON (``--json`` or
config ``output: json``) or for people (cliff's formatters, so ``-f`` and ``-c`` keep
working on listers and show commands).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, cast

from cliff import command, lister, show

from levered_core import output
from levered_core.errors import APIError, LeveredError, PluginError

if TYPE_CHECKING:
    from levered_core.app import LeveredApp
    from levered_core.client import LeveredClient


class _LeveredMixin:
    """What every levered command shares, whatever cliff base it has."""

    cmd_name: str | None
    _hooks: Any
    #: The JSON document of this run's result, for command hooks' ``after``; None before it ran.
    last_document: Any = None

    def _load_hooks(self) -> None:
        # cliff's own loader logs a failing hook as an error and hides which command it was for.
        if not self.cmd_name:
            self._hooks = []
            return
        from stevedore import extension

        from levered_core.plugin_api import hook_namespace

        def failed(_manager: Any, ep: Any, exc: BaseException) -> None:
            sys.stderr.write(f"levered: warning: hook '{ep.name}' ({ep.value}) for '{self.cmd_name}' failed to "
                             f"load: {type(exc).__name__}: {exc}; the command runs without it\n")

        self._hooks = extension.ExtensionManager(hook_namespace(self.cmd_name), invoke_on_load=True,
                                                 invoke_kwds={"command": self}, on_load_failure_callback=failed)

    def _call_hooks(self, method: str, *args: Any) -> Any:
        """Call ``method`` on each hook in turn, threading its result; a failure names the hook."""
        value = args[-1]
        for hook in self._hooks:
            if hook.obj is None:
                continue
            try:
                returned = getattr(hook.obj, method)(*args[:-1], value)
            except LeveredError:
                raise
            except Exception as exc:
                raise PluginError(f"hook '{hook.name}' ({hook.entry_point.value}) {method} '{self.cmd_name}' "
                                  f"failed: {type(exc).__name__}: {exc}") from exc
            if returned is not None:
                value = returned
        return value

    def _run_before_hooks(self, parsed_args: argparse.Namespace) -> argparse.Namespace:
        return self._call_hooks("before", parsed_args)  # type: ignore[no-any-return]

    def _run_after_hooks(self, parsed_args: argparse.Namespace, result: Any) -> Any:
        return self._call_hooks("after", parsed_args, result)

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
        self.last_document = result.document  # what after-hooks read (e.g. the created object)
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
        return int(self._run_after_hooks(parsed_args, 0))


class _Display(_LeveredMixin):
    """Shared ``run`` of Lister and ShowOne: JSON, or cliff's formatters."""

    _formatter_plugins: Any
    formatter: Any

    def run(self, parsed_args: argparse.Namespace) -> int:
        parsed_args = self._run_before_hooks(parsed_args)
        result = self._take(parsed_args)
        hooked = self._run_after_hooks(parsed_args, result)
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
