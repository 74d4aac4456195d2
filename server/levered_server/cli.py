"""The ``levered server …`` command group: the server ships as a levered plugin.

Importing this module must stay cheap (the CLI loads it to list commands): everything of
the server itself is imported inside the commands.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

from levered_core.errors import LeveredError, UsageError
from levered_core.plugin_api import Command, CommandGroup, Result, ShowOne

GROUP = CommandGroup("server", "Run the Levered API server on this machine", api_version=1, builtin=True)


def _absolute_dir(text: str) -> pathlib.Path:
    # Absolute, so that the hints printed and the server.json written name the same place
    # whatever directory the next command runs from.
    return pathlib.Path(text).expanduser().resolve()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=_absolute_dir,
                        help="state directory (default $LEVERED_HOME/server, i.e. ~/.levered/server)")
    parser.add_argument("--database-url", help="PostgreSQL URL instead of SQLite in the data dir")


def _settings(parsed_args: argparse.Namespace, **extra: Any) -> Any:
    from levered_server.settings import settings_from_env

    try:
        return settings_from_env(data_dir=parsed_args.data_dir, database_url=parsed_args.database_url, **extra)
    except ValueError as exc:  # LEVERED_PORT=abc and the like: found here, before anything starts
        raise UsageError(f"invalid server setting: {exc}") from None


def _initialize(settings: Any) -> dict[str, Any] | None:
    """Migrate the state store and create the first organization and admin, once."""
    from levered_server.bootstrap import ensure_initialized
    from levered_server.store import open_store

    store = open_store(settings.sqlalchemy_url)
    try:
        return ensure_initialized(store=store, settings=settings)
    finally:
        store.dispose()


def _init_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--init", action="store_true",
                        help="create the database (and its Default organization) when the data dir has none yet; "
                             "without it the command refuses, so a mistyped --data-dir does not write into a new, "
                             "empty server")


def _require_database(settings: Any, init: bool) -> None:
    """Refuse an offline command on a data dir (or database URL) without a server database,
    unless `--init` asks to create one: a mistyped --data-dir must not start a new, empty server."""
    from levered_server.bootstrap import has_database

    if init or has_database(settings):
        return
    where = _where(settings, database=True)
    place = settings.data_dir if not settings.database_url else "the --database-url database"
    raise UsageError(f"no Levered server database in {place} yet: pass the --data-dir (and "
                     f"--database-url) the server was started with, start it first (`levered server "
                     f"start{where}`), or add --init to create one")


def _where(settings: Any, *, database: bool = False) -> str:
    """The options a later `levered server …` command needs to find this server's state:
    `--data-dir DIR` unless it is the one a bare command uses (likewise `--database-url`)."""
    import shlex

    from levered_server.settings import settings_from_env

    try:
        bare = settings_from_env()
    except ValueError:
        bare = None
    args = ""
    if bare is None or settings.data_dir.resolve() != bare.data_dir.expanduser().resolve():
        args += f" --data-dir {shlex.quote(str(settings.data_dir))}"
    if database and settings.database_url and (bare is None or settings.database_url != bare.database_url):
        has_password = ":" in settings.database_url.partition("://")[2].rpartition("@")[0]
        args += " --database-url " + ("'<your database URL>'" if has_password else shlex.quote(settings.database_url))
    return args


def _describe_start(status: dict[str, Any], settings: Any) -> str:
    workers = f", {status['workers']} workers" if (status.get("workers") or 1) > 1 else ""
    lines = [f"Levered server {status.get('version')} is up at {status['url']} (pid {status['pid']}{workers})",
             f"Database  {status.get('database')}", f"Data dir  {status.get('data_dir')}",
             f"Logs      {status.get('data_dir')}/server.log"]
    first = status.get("first_start")
    if first:
        lines += ["", f"First start: created organization '{first['name']}' and admin {first['admin_email']}",
                  f"(one-time password: {first['admin_password']})."]
    if status.get("demo"):
        lines += ["", _describe_demo(status)]
    else:
        who = f" as {first['admin_email']} with the one-time password" if first else ""
        lines += ["", f"Log in{who} (a browser opens; add --device over SSH):",
                  f"  levered login --api-url {status['url']}",
                  "Or, for scripts and CI, use an API key:",
                  f"  export LEVERED_API_URL={status['url']}",
                  f"  export LEVERED_API_KEY=$(levered server api-key create{_where(settings, database=True)})"]
    lines.append(f"Stop it with: levered server stop{_where(settings)}")
    return "\n".join(lines)


def _describe_demo(status: dict[str, Any]) -> str:
    demo = status["demo"]
    return "\n".join([f"Demo: organization '{demo['organization']}', metric '{demo['metric']}', "
                      f"{len(demo['optimizations'])} optimizations; a traffic simulator is running (pid {demo['pid']}).",
                      "Watch it learn:", f"  export LEVERED_API_URL={status['url']} LEVERED_API_KEY={demo['api_key']}",
                      "  levered optimizations list"])


def _workers(status: dict[str, Any]) -> str:
    """`1`, or `2 (pids 4243, 4244)`: the processes `levered server stop` stops with the server."""
    if not status["running"]:
        return "-"
    pids = status.get("worker_pids")
    return f"{status.get('workers') or 1}" + (f" (pids {', '.join(map(str, pids))})" if pids else "")


class StartServer(Command):
    """Start the API server in the background"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
        parser.add_argument("--port", type=int, default=3100, help="port (default 3100)")
        parser.add_argument("--workers", type=_positive,
                            help="worker processes on the port (default 1, LEVERED_WORKERS); "
                                 "more than one needs a PostgreSQL --database-url")
        _data_dir_argument(parser)
        parser.add_argument("--demo", action="store_true",
                            help="seed a demo organization and run a traffic simulator against the server")
        parser.add_argument("--foreground", action="store_true", help="run in this terminal until Ctrl-C")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_server import control
        from levered_server.errors import StartRefused

        settings = _settings(parsed_args, host=parsed_args.host, port=parsed_args.port,
                             workers=parsed_args.workers)
        try:
            control.preflight(settings)  # before anything is created, logged or spawned
            first = _initialize(settings)
            if parsed_args.foreground:
                return self._foreground(settings, demo=parsed_args.demo)
        except StartRefused as exc:
            raise LeveredError(f"cannot start the server: {exc}") from None
        try:
            from levered_server import demo

            status = control.start_background(settings, env=demo.server_env() if parsed_args.demo else None)
            if parsed_args.demo:
                status["demo"] = demo.start(settings, status["url"])
        except RuntimeError as exc:
            raise LeveredError(f"cannot start the server: {exc}") from None
        status["first_start"] = first
        return Result.text(_describe_start(status, settings), status)


    def _foreground(self, settings: Any, *, demo: bool) -> Result:
        """Serve in this terminal until Ctrl-C; with `demo`, seed the demo and run its
        simulator once the server answers, and stop the simulator with the server."""
        from levered_server import control
        from levered_server import demo as demo_mod

        if demo:
            settings = demo_mod.demo_settings(settings)

            def started(state: dict[str, Any]) -> None:
                status = {"url": state["url"], "demo": state}
                self.app.stdout.write(_describe_demo(status) + "\n")
                self.app.stdout.flush()

            demo_mod.start_when_up(settings, control.url_of(settings), started)
        try:
            control.run(settings)
        finally:
            if demo:
                demo_mod.stop(settings.data_dir)
        return Result.text("Server stopped", {"running": False})


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


class ShowServerStatus(ShowOne):
    """Show whether the server runs, its URL, database and warehouse"""

    # Exit 1 when down (the status is printed either way, also with --json), so that
    # scripts can test `levered server status >/dev/null`, as with `systemctl status`.

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.epilog = "Exit status: 0 when the server is up, 1 when it is not running."
        _data_dir_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_server import control

        settings = _settings(parsed_args)
        status = control.status(settings.data_dir)
        if not status.get("warehouse"):
            status["warehouse"] = f"duckdb (embedded) in {settings.warehouse_dir}" if status["running"] else None
        status.setdefault("database", None)
        rows = [("Status", "up" if status["running"] else "down"), ("URL", status.get("url") or "-"),
                ("Workers", _workers(status)),
                ("Version", status.get("version") or "-"), ("Database", status.get("database") or "-"),
                ("Warehouse", status["warehouse"] or "-"), ("Data dir", str(settings.data_dir))]
        return Result.text("\n".join(f"{label:<10} {value}" for label, value in rows), status)

    def run(self, parsed_args: argparse.Namespace) -> int:
        code = super().run(parsed_args)
        document = getattr(self, "last_document", None) or {}
        return code or (0 if document.get("running") else 1)


class CreateServerApiKey(Command):
    """Create an API key offline, for scripts and CI"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _data_dir_argument(parser)
        parser.add_argument("--org", help="organization name (default: the first one)")
        parser.add_argument("--name", default="cli", help="what the key is for (default cli)")
        _init_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        from levered_server.bootstrap import create_api_key

        settings = _settings(parsed_args)
        _require_database(settings, parsed_args.init)
        try:
            key = create_api_key(settings=settings, org_name=parsed_args.org, name=parsed_args.name)
        except LookupError as exc:
            raise UsageError(f"{exc}; omit --org for the default organization") from None
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
        _init_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        import getpass
        import sys

        from levered_server.bootstrap import create_user

        settings = _settings(parsed_args)
        if "@" not in parsed_args.email:
            raise UsageError(f"{parsed_args.email!r} is not an email address: give the user's login email, "
                             "e.g. ada@acme.test")
        _require_database(settings, parsed_args.init)
        if parsed_args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        elif not sys.stdin.isatty():
            raise UsageError("no terminal to ask for the password: pipe it in with --password-stdin, e.g. "
                             "`printf '%s\\n' \"$PASSWORD\" | levered server user create EMAIL --password-stdin`")
        else:
            try:
                password = getpass.getpass("Password: ")
            except EOFError:
                raise UsageError("no password was typed; use --password-stdin to pipe it in") from None
        try:
            user = create_user(settings=settings, email=parsed_args.email, password=password, org_name=parsed_args.org,
                               name=parsed_args.name, create_org=parsed_args.create_org)
        except LookupError as exc:
            raise UsageError(f"{exc}: add --create-org to create it, or omit --org for the default one") from None
        except ValueError as exc:  # a password under 8 characters for a new user
            raise UsageError(f"{exc}; the user was not created: run the command again with a longer one") from None
        verb = "Created user" if user["created"] else "Added existing user"
        return Result.text(f"{verb} {user['email']} in organization {user['organization_name']}", user)
