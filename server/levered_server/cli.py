"""The ``levered server …`` command group: the server ships as a levered plugin.

Importing this module must stay cheap (the CLI loads it to list commands): everything of
the server itself is imported inside the commands.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

from levered_core.errors import LeveredError
from levered_core.plugin_api import Command, CommandGroup, Result

GROUP = CommandGroup("server", "Run the Levered API server on this machine", api_version=1)


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=pathlib.Path,
                        help="state directory (default $LEVERED_HOME/server, i.e. ~/.levered/server)")
    parser.add_argument("--database-url", help="PostgreSQL URL instead of SQLite in the data dir")


def _settings(parsed_args: argparse.Namespace, **extra: Any) -> Any:
    from levered_server.settings import settings_from_env

    try:
        return settings_from_env(data_dir=parsed_args.data_dir, database_url=parsed_args.database_url, **extra)
    except ValueError as exc:
        raise LeveredError(f"invalid server setting: {exc}") from None


def _initialize(settings: Any) -> dict[str, Any] | None:
    """Migrate the state store and create the first organization and admin, once."""
    from levered_server.bootstrap import ensure_initialized
    from levered_server.store import open_store

    store = open_store(settings.sqlalchemy_url)
    try:
        return ensure_initialized(store=store, settings=settings)
    finally:
        store.dispose()


def _describe_start(status: dict[str, Any]) -> str:
    lines = [f"Levered server {status.get('version')} is up at {status['url']} (pid {status['pid']})",
             f"Database  {status.get('database')}", f"Data dir  {status.get('data_dir')}",
             f"Logs      {status.get('data_dir')}/server.log"]
    first = status.get("first_start")
    if first:
        lines += ["", f"First start: created organization '{first['name']}' and admin {first['admin_email']}",
                  f"(one-time password: {first['admin_password']})."]
    demo = status.get("demo")
    if demo:
        lines += ["", f"Demo: organization '{demo['organization']}', metric '{demo['metric']}', "
                      f"{len(demo['optimizations'])} optimizations; a traffic simulator is running (pid {demo['pid']}).",
                  "Watch it learn:", f"  export LEVERED_API_URL={status['url']} LEVERED_API_KEY={demo['api_key']}",
                  "  levered optimizations list"]
    else:
        lines += ["", "Authenticate the CLI with an API key:",
                  f"  export LEVERED_API_URL={status['url']}",
                  "  export LEVERED_API_KEY=$(levered server api-key create)"]
    lines.append("Stop it with: levered server stop")
    return "\n".join(lines)


class StartServer(Command):
    """Start the API server in the background"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
        parser.add_argument("--port", type=int, default=3100, help="port (default 3100)")
        _data_dir_argument(parser)
        parser.add_argument("--demo", action="store_true",
                            help="seed a demo organization and run a traffic simulator against the server")
        parser.add_argument("--foreground", action="store_true", help="run in this terminal until Ctrl-C")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_server import control

        settings = _settings(parsed_args, host=parsed_args.host, port=parsed_args.port)
        first = _initialize(settings)
        if parsed_args.foreground:
            control.run(settings)
            return Result.text("Server stopped", {"running": False})
        try:
            from levered_server import demo

            status = control.start_background(settings, env=demo.server_env() if parsed_args.demo else None)
            if parsed_args.demo:
                status["demo"] = demo.start(settings, status["url"])
        except RuntimeError as exc:
            raise LeveredError(f"cannot start the server: {exc}") from None
        status["first_start"] = first
        return Result.text(_describe_start(status), status)


class StopServer(Command):
    """Stop the API server of a data directory"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _data_dir_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_server import control, demo

        settings = _settings(parsed_args)
        demo_stopped = demo.stop(settings.data_dir)
        stopped = control.stop(settings.data_dir)
        text = "Server stopped" if stopped else f"No server was running for {settings.data_dir}"
        return Result.text(text, {"stopped": stopped, "demo_stopped": demo_stopped,
                                  "data_dir": str(settings.data_dir)})


class ShowServerStatus(Command):
    """Show whether the server runs, its URL, database and warehouse"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _data_dir_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_server import control

        settings = _settings(parsed_args)
        status = control.status(settings.data_dir)
        status.setdefault("warehouse", f"duckdb (embedded) in {settings.warehouse_dir}")
        status.setdefault("database", None)
        rows = [("Status", "up" if status["running"] else "down"), ("URL", status.get("url") or "-"),
                ("Version", status.get("version") or "-"), ("Database", status.get("database") or "-"),
                ("Warehouse", status["warehouse"]), ("Data dir", str(settings.data_dir))]
        return Result.text("\n".join(f"{label:<10} {value}" for label, value in rows), status)


class CreateServerApiKey(Command):
    """Create an API key offline, for scripts and CI"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _data_dir_argument(parser)
        parser.add_argument("--org", help="organization name (default: the first one)")
        parser.add_argument("--name", default="cli", help="what the key is for (default cli)")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_server.bootstrap import create_api_key

        settings = _settings(parsed_args)
        try:
            key = create_api_key(settings=settings, org_name=parsed_args.org, name=parsed_args.name)
        except LookupError as exc:
            raise LeveredError(f"{exc}; omit --org for the default organization") from None
        # Only the secret on stdout, so `export LEVERED_API_KEY=$(levered server api-key create)` works.
        self.app.stderr.write(f"API key '{key['name']}' of organization {key['organization_name']}; shown once.\n")
        return Result.text(key["secret"], key)


class CreateServerUser(Command):
    """Create a login user, or add one to an organization"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _data_dir_argument(parser)
        parser.add_argument("email", help="the user's email (the login name)")
        parser.add_argument("--org", help="organization name (default: the first one)")
        parser.add_argument("--create-org", action="store_true", help="create --org if it does not exist")
        parser.add_argument("--name", help="display name (default: the email's local part)")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        import getpass
        import sys

        from levered_server.bootstrap import create_user

        settings = _settings(parsed_args)
        password = sys.stdin.readline().rstrip("\n") if parsed_args.password_stdin else getpass.getpass("Password: ")
        try:
            user = create_user(settings=settings, email=parsed_args.email, password=password, org_name=parsed_args.org,
                               name=parsed_args.name, create_org=parsed_args.create_org)
        except (LookupError, ValueError) as exc:
            raise LeveredError(str(exc)) from None
        verb = "Created user" if user["created"] else "Added existing user"
        return Result.text(f"{verb} {user['email']} in organization {user['organization_name']}", user)
