"""Base classes of every levered command: ``--json``, the API client, error mapping.

Subclasses implement ``get_parser`` (optionally) and ``take_action``, which returns a
:class:`~levered_core.output.Result`; the base class prints it as JSON (``--json`` or
config ``output: json``) or for people (cliff's formatters, so ``-f`` and ``-c`` keep
working on listers and show commands).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from cliff import command, lister, show

from levered_core import output
from levered_core.errors import APIError, LeveredError, NoResponse, PluginError

if TYPE_CHECKING:
    from levered_core.app import LeveredApp
    from levered_core.client import LeveredClient


class _GuardedHook:
    """A loaded command hook whose failures name it, its distribution and what it was doing."""

    _DOING = {"get_parser": "adding options to", "get_epilog": "adding help to", "before": "before",
              "after": "after"}

    def __init__(self, hook: Any, spec: dict[str, Any], command_name: str) -> None:
        self.hook, self.spec, self.command_name = hook, spec, command_name

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.hook, name)
        doing = self._DOING.get(name)
        if doing is None:
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except LeveredError:
                raise  # the hook's own refusal (UsageError...) keeps its message and exit code
            except Exception as exc:
                spec = self.spec
                raise PluginError(f"hook '{spec['name']}' of {spec['distribution']} ({spec['target']}) {doing} "
                                  f"'{self.command_name}' failed: {type(exc).__name__}: {exc}") from exc

        return guarded


class _LeveredMixin:
    """What every levered command shares, whatever cliff base it has."""

    cmd_name: str | None
    _hooks: Any
    #: The JSON document of this run's result, for command hooks' ``after``; None before it ran.
    last_document: Any = None
    #: The command that shows whether this command's change reached the server, named when its
    #: request was sent but not answered (``"levered metrics list"``); ``{dest}`` fields are filled
    #: from the parsed arguments (``"levered optimizations show {id}"``). None: a generic hint.
    check_command: str | None = None

    def _load_hooks(self) -> None:
        # Not cliff's loader: it would load every hook installed, whatever the plugin policy, and log a
        # failing one without saying which command it was for. The manifest lists the hooks with the
        # policy applied (by distribution); each one loaded is wrapped so that its failures name it.
        self._hooks = []
        if not self.cmd_name:
            return
        import importlib.metadata

        from stevedore import extension

        from levered_core import manifest
        from levered_core.plugin_api import hook_namespace

        data = getattr(getattr(self, "app", None), "manifest", None) or manifest.load()
        for spec in data.get("hooks", []):
            if spec["command"] != self.cmd_name or spec.get("status", "loaded") != "loaded":
                continue  # disabled by the policy, or failed to import (already warned about)
            ep = importlib.metadata.EntryPoint(spec["name"], spec["target"], hook_namespace(self.cmd_name))
            try:
                factory = ep.load()
                hook = factory(command=self)
            except Exception as exc:
                sys.stderr.write(f"levered: warning: hook '{spec['name']}' ({spec['target']}) for '{self.cmd_name}' "
                                 f"failed to load: {type(exc).__name__}: {exc}; the command runs without it\n")
                continue
            self._hooks.append(extension.Extension(spec["name"], ep, factory, _GuardedHook(hook, spec, self.cmd_name)))

    def _call_hooks(self, method: str, *args: Any) -> Any:
        """Call ``method`` on each hook in turn, threading its result; a failure names the hook."""
        value = args[-1]
        for hook in self._hooks:
            if hook.obj is None:
                continue
            returned = getattr(hook.obj, method)(*args[:-1], value)
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
        except NoResponse as exc:
            if exc.maybe_applied and exc.check is None:
                exc.check_with(self._check_command(parsed_args))
            raise
        if not isinstance(result, output.Result):
            raise TypeError(f"{type(self).__name__}.take_action must return a levered_core.output.Result")
        self.last_document = result.document  # what after-hooks read (e.g. the created object)
        return result

    def _check_command(self, parsed_args: argparse.Namespace) -> str | None:
        if not self.check_command:
            return None
        try:
            return self.check_command.format_map(vars(parsed_args))
        except (KeyError, IndexError, ValueError):  # a field the parser does not have: say it as declared
            return self.check_command


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


class _CellFormatter:
    """A cliff formatter handed each cell as its format prints it (:func:`levered_core.output.cells_for`).

    Applied after cliff's ``--sort-column`` and ``-c``, so sorting compares the API's values.
    """

    def __init__(self, formatter: Any, name: str) -> None:
        self.formatter, self.name = formatter, name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.formatter, attribute)

    def emit_list(self, column_names: Sequence[str], data: Any, stdout: Any, parsed_args: argparse.Namespace) -> None:
        rows = [output.cells_for(self.name, row) for row in data]
        self.formatter.emit_list(column_names, rows, stdout, parsed_args)

    def emit_one(self, column_names: Sequence[str], data: Any, stdout: Any, parsed_args: argparse.Namespace) -> None:
        self.formatter.emit_one(column_names, output.cells_for(self.name, data), stdout, parsed_args)


class _Display(_LeveredMixin):
    """Shared ``run`` of Lister and ShowOne: JSON, or cliff's formatters."""

    _formatter_plugins: Any
    formatter: Any

    def run(self, parsed_args: argparse.Namespace) -> int:
        parsed_args = self._run_before_hooks(parsed_args)
        result = self._take(parsed_args)
        hooked = self._run_after_hooks(parsed_args, result)
        if not isinstance(hooked, output.Result):  # a hook returned cliff's plain pair
            hooked = output.Result(hooked[0], hooked[1], result.document, footer=result.footer)
        result = hooked
        if self.wants_json(parsed_args):
            output.print_json(result.document, self.levered_app.stdout)
            return 0
        if not result.data and parsed_args.formatter == "table":
            output.print_text("(none)", self.levered_app.stdout)  # cliff's table prints nothing at all
        else:
            self.formatter = _CellFormatter(self._formatter_plugins[parsed_args.formatter].obj, parsed_args.formatter)
            self.produce_output(parsed_args, result.columns, result.data)  # type: ignore[attr-defined]
        if result.footer:
            self.levered_app.stdout.flush()  # the footer follows the table on a shared terminal
            output.print_text(result.footer, self.levered_app.stderr)
        return 0

    def _generate_columns_and_selector(self, parsed_args: argparse.Namespace,
                                       column_names: Sequence[str]) -> tuple[list[str], list[bool] | None]:
        """Select the ``-c`` columns; an unknown one is a usage error naming the valid ones."""
        if not parsed_args.columns:
            return list(column_names), None

        def normal(name: str) -> str:
            return name.lower().strip().replace(" ", "_")

        known = {normal(name) for name in column_names}
        unknown = [name for name in parsed_args.columns if normal(name) not in known]
        if unknown:
            from levered_core.errors import UsageError

            raise UsageError(f"unknown column {', '.join(map(repr, unknown))}; "
                             f"columns: {', '.join(column_names) or '(none)'}")
        wanted = {normal(name) for name in parsed_args.columns}
        selector = [normal(name) in wanted for name in column_names]
        return [name for name, keep in zip(column_names, selector, strict=True) if keep], selector


class Lister(_Display, lister.Lister):
    """A command that lists objects: a table for people, the API list for ``--json``."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return self._add_json_flag(super().get_parser(prog_name))


class ShowOne(_Display, show.ShowOne):
    """A command that shows one object: field/value pairs, the API object for ``--json``.

    ``take_action`` returns either ``Result(columns, values, document)`` (a field table) or
    ``Result.text(text, document)``: then people get the text, and an explicit ``-f`` or
    ``-c`` prints the document's top-level fields through cliff's formatters instead.
    """

    _explicit_format = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = self._add_json_flag(super().get_parser(prog_name))
        parser.set_defaults(formatter=None)  # None: no -f given, so a text result prints as text
        return parser

    def run(self, parsed_args: argparse.Namespace) -> int:
        explicit = parsed_args.formatter is not None or bool(parsed_args.columns)
        parsed_args.formatter = parsed_args.formatter or "table"
        self._explicit_format = explicit
        return super().run(parsed_args)

    def wants_json(self, parsed_args: argparse.Namespace) -> bool:
        """As for every command, except that an explicit ``-f table`` wins over ``output: json``."""
        if self._explicit_format and not (getattr(parsed_args, "json", False) or self.levered_app.options.json):
            return False
        return super().wants_json(parsed_args)

    def produce_output(self, parsed_args: argparse.Namespace, column_names: Sequence[str], data: Any) -> int:
        if column_names or not isinstance(data, str):
            return int(super().produce_output(parsed_args, column_names, data))
        if not self._explicit_format:
            output.print_text(data, self.levered_app.stdout)
            return 0
        columns, values = output.fields(self.last_document)
        return int(super().produce_output(parsed_args, columns, values))
