"""The `levered-server` console script (for service managers)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from levered_server import __version__


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


class _VersionAction(argparse.Action):
    """``--version``: this server, every other distribution with a warehouse driver, and Python (for bug reports)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        import importlib.metadata

        drivers = {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()
                   if any(ep.group.startswith("levered.warehouse") for ep in dist.entry_points)}
        drivers.pop("levered-server", None)
        lines = [f"levered-server {__version__}", *(f"{name} {drivers[name]}" for name in sorted(drivers)),
                 f"Python {sys.version.split()[0]} ({sys.executable})"]
        sys.stdout.write("\n".join(lines) + "\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Options of `levered-server`; each falls back to its environment variable."""
    p = argparse.ArgumentParser(prog="levered-server",
                                description="Run the Levered API server (uvicorn).")
    p.add_argument("--host", help="bind address (default 127.0.0.1, LEVERED_HOST)")
    p.add_argument("--port", type=int, help="port (default 3100, LEVERED_PORT)")
    p.add_argument("--data-dir", type=Path,
                   help="state directory (default $LEVERED_HOME/server or ~/.levered/server)")
    p.add_argument("--database-url",
                   help="SQLAlchemy URL of PostgreSQL, e.g. postgresql+psycopg://u@h/db "
                        "(default: SQLite in the data dir)")
    p.add_argument("--workers", type=_positive,
                   help="worker processes on the port (default 1, LEVERED_WORKERS); more than "
                        "one needs a PostgreSQL --database-url")
    p.add_argument("--log-level", help="debug, info, warning (default info)")
    p.add_argument("--generate-secret-key", action="store_true",
                   help="print a new random value for LEVERED_SECRET_KEY and exit")
    p.add_argument("--version", action=_VersionAction, nargs=0,
                   help="print the versions of levered-server, its warehouse drivers and Python, and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse options, then serve until interrupted.

    A refused start (the data dir in use, no or the wrong secret key, more workers than the
    layout allows, a worker that could not start) is one line on stderr and exit status 1.
    """
    from levered_server.control import run
    from levered_server.errors import StartRefused
    from levered_server.settings import settings_from_env

    args = build_parser().parse_args(argv)
    if args.generate_secret_key:
        from levered_server.secretbox import generate_secret

        sys.stdout.write(generate_secret() + "\n")
        return 0
    try:
        settings = settings_from_env(host=args.host, port=args.port, data_dir=args.data_dir,
                                     database_url=args.database_url, log_level=args.log_level,
                                     workers=args.workers)
    except ValueError as exc:
        sys.stderr.write(f"levered-server: invalid setting: {exc}\n")
        return 2
    try:
        run(settings)
    except StartRefused as exc:
        sys.stderr.write(f"levered-server: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
