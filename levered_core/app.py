"""The cliff application: commands from the manifest, one-line errors, exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from cliff import app as cliff_app
from cliff import commandmanager
from cliff import help as cliff_help

from levered_core import __version__, config, globalopts
from levered_core import help as help_text
from levered_core import manifest as manifest_module
from levered_core.completion import CompleteLevered
from levered_core.errors import ExitCode, LeveredError, PluginError, UsageError, describe, exit_code_for
from levered_core.plugin_api import COMMANDS_NAMESPACE

if TYPE_CHECKING:
    from cliff.command import Command

    from levered_core.client import LeveredClient



class _OwnInfoOnly(logging.Filter):
    """Below WARNING, show only levered's own records: libraries' INFO chatter is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(("levered", "cliff"))


class LazyCommand:
    """An entry-point-like handle that imports its command class on first use."""

    def __init__(self, name: str, spec: dict[str, Any]) -> None:
        self.name = name
        self.value = spec["target"]
        self.distribution = spec.get("distribution")

    def load(self) -> type[Command]:
        module_name, _, attr = self.value.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
        except Exception as exc:
            raise PluginError(f"command '{self.name}' of {self.distribution} cannot be loaded: "
                              f"{type(exc).__name__}: {exc}") from exc


class ManifestCommandManager(commandmanager.CommandManager):
    """cliff's command manager, filled from the plugin manifest instead of a fresh scan.

    The namespace stays :data:`COMMANDS_NAMESPACE`, so cliff finds command hooks in
    ``<COMMANDS_NAMESPACE>.<command>`` exactly as it would with its own loader.
    """

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        super().__init__(COMMANDS_NAMESPACE, convert_underscores=True)

    def _load_commands(self) -> None:
        self.group_list.append(COMMANDS_NAMESPACE)
        for name, spec in self.manifest["commands"].items():
            self.commands[name] = LazyCommand(name, spec)  # type: ignore[assignment]


class LeveredHelp(cliff_help.HelpCommand):
    """Show help for a group or a command (`levered help exit-codes` lists exit codes)"""

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        words = parsed_args.cmd
        app: LeveredApp = self.app  # type: ignore[assignment]
        if not words:
            app.stdout.write(help_text.app_help(app.manifest, app.parser.format_help()))
        elif words == ["exit-codes"]:
            app.stdout.write(help_text.exit_codes_help())
        elif len(words) == 1 and words[0] in app.manifest["groups"] and words[0] not in app.manifest["commands"]:
            app.stdout.write(help_text.group_help(app.manifest, words[0]))
        else:
            try:
                app.command_manager.find_command(words)
            except ValueError:
                raise app.unknown_command_error(words) from None  # cliff would list prefix matches, exit 0
            return int(super().take_action(parsed_args))
        return 0


class _ConsoleFormatter(logging.Formatter):
    """Errors as ``Error: <one line>``; other records as their message."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.ERROR:
            message = describe(record.msg) if isinstance(record.msg, BaseException) else record.getMessage()
            text = f"Error: {message}"
            if record.exc_info:
                text = self.formatException(record.exc_info) + "\n" + text
            return text
        return record.getMessage()


class LeveredApp(cliff_app.App):
    """The ``levered`` application: command groups come from installed plugins."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        self._settings: config.Settings | None = None
        self._client: LeveredClient | None = None
        self._failure: BaseException | None = None
        super().__init__(description=globalopts.DESCRIPTION, version=__version__,
                         command_manager=ManifestCommandManager(manifest), deferred_help=True)
        self.command_manager.add_command("help", LeveredHelp)
        self.command_manager.add_command("complete", CompleteLevered)

    def build_option_parser(self, description: str | None, version: str | None,
                            argparse_kwargs: dict[str, Any] | None = None) -> argparse.ArgumentParser:
        return globalopts.build_parser()

    def configure_logging(self) -> None:
        super().configure_logging()
        root = logging.getLogger("")
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is self.stderr:
                handler.setFormatter(_ConsoleFormatter())
                if self.options.debug:
                    handler.setLevel(logging.DEBUG)
                if self.options.verbose_level < 2:
                    handler.addFilter(_OwnInfoOnly())

    def initialize_app(self, argv: list[str]) -> None:
        manifest_module.report_problems(self.manifest, self.options.debug, self.stderr)

    def print_help_if_requested(self) -> None:
        if self.options.deferred_help:
            self.stdout.write(help_text.app_help(self.manifest, self.parser.format_help()))
            raise cliff_help.HelpExit()

    def interact(self) -> None:
        # cliff would start its cmd2 REPL here; a CLI for scripts prints the help instead.
        self.stdout.write(help_text.app_help(self.manifest, self.parser.format_help()))
        self._helped = True

    def run(self, argv: list[str]) -> int:
        """Run ``argv``; only global options (``levered -v``) print the help and exit 0."""
        self._helped = False
        code = int(super().run(argv))
        return 0 if self._helped and code == 1 else code

    @property
    def settings(self) -> config.Settings:
        """The configuration in force, read once per run."""
        if self._settings is None:
            self._settings = config.Settings.load()
        return self._settings

    def target(self) -> tuple[str, str]:
        """The (environment, API URL) this run talks to, resolved from flags, env and config."""
        settings = self.settings
        return config.environment(settings), config.resolve_api_url(settings, self.options.api_url)

    def login_command(self) -> str:
        """The command that logs in to :meth:`target`'s URL: ``--api-url`` too if the flag chose it."""
        return f"levered login --api-url {self.target()[1]}" if self.options.api_url else "levered login"

    def new_client(self, token: str | None = None) -> LeveredClient:
        """A client for :meth:`target` with the configured timeout and CA bundle."""
        from levered_core.client import LeveredClient

        settings = self.settings
        return LeveredClient(self.target()[1], token, timeout=float(settings.checked("timeout")),
                             ca_bundle=settings.checked("ca_bundle"), login_command=self.login_command())

    @property
    def client(self) -> LeveredClient:
        """The API client for this run: URL, credential and timeout resolved once."""
        if self._client is None:
            from levered_core import credentials

            env, api_url = self.target()
            client = self.new_client()
            api_key = credentials.api_key()
            stored = None if api_key else credentials.load_session(env, api_url)
            client.token = api_key or (stored.session_token if stored else None)
            if stored is not None and stored.refresh_token:
                from levered_core import oauth

                def refresher(stale: str | None) -> str:
                    return oauth.refresh(client.session, env, api_url, stale, login=client.login_command)

                client._refresher = refresher
                if oauth.expires_soon(stored):
                    client.token = refresher(stored.session_token)
            self._client = client
        return self._client

    def run_subcommand(self, argv: list[str]) -> int:
        try:
            self.command_manager.find_command(argv)
        except ValueError:
            error = self.unknown_command_error(argv)
            self.stderr.write(f"Error: {error}\n")
            return int(error.exit_code)
        except PluginError as exc:
            self.LOG.error(exc, exc_info=self.options.debug)
            return int(ExitCode.ERROR)
        self._failure = None
        code = super().run_subcommand(argv)
        if self._failure is not None:
            return exit_code_for(self._failure)
        return int(code)

    def clean_up(self, cmd: Command, result: int, err: BaseException | None) -> None:
        self._failure = err

    def unknown_command_error(self, argv: list[str]) -> LeveredError:
        """Return the error for ``argv``, which names no command: a command that failed to load,
        else a usage error with its group's commands or a guess."""
        failed = self.manifest.get("failed_commands", {})
        for words in (argv[:2], argv[:1]):
            if " ".join(words) in failed:
                return PluginError(f"{failed[' '.join(words)]}; see `levered plugins list`, "
                                   "or run with --debug for the traceback")
        groups = self.manifest["groups"]
        if argv[0] in groups and argv[0] not in self.manifest["commands"]:
            verbs = [verb for verb, _ in help_text.group_commands(self.manifest, argv[0])]
            known = f"its commands: {', '.join(verbs)}" if verbs else "it has no commands installed yet"
            error: UsageError = UsageError(f"'{' '.join(argv[:2])}' is not a levered command; {known}")
        else:
            import difflib

            words = sorted({*self.manifest["groups"], *(name.split()[0] for name in self.manifest["commands"])})
            suggestions = difflib.get_close_matches(argv[0], words, n=3)
            hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
            error = UsageError(f"'{argv[0]}' is not a levered command{hint} (see `levered --help`)")
        return error


def run(argv: list[str]) -> int:
    """Build the app from the manifest and run ``argv``; return the exit code."""
    try:
        manifest = manifest_module.load()
    except Exception as exc:  # discovery itself failed: say so in one line
        sys.stderr.write(f"Error: cannot list installed plugins: {describe(exc)}\n")
        return exit_code_for(exc)  # a malformed site config is a local problem: 2
    return int(LeveredApp(manifest).run(argv))
