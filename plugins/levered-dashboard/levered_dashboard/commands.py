"""``levered dashboard``: a live, read-only terminal view of running optimizations."""

from __future__ import annotations

import argparse

from levered_core.errors import UsageError
from levered_core.plugin_api import Command, Result

MIN_REFRESH = 2.0
NO_JSON = ("not supported: the dashboard is a terminal UI (exit 2); "
           "use `levered optimizations results ID --json` for data")


def refresh_seconds(value: str) -> float:
    """Parse ``--refresh``: a number of seconds, at least 2."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not MIN_REFRESH <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"must be between {MIN_REFRESH:g} and 3600 seconds, got {value}")
    return seconds


class ShowDashboard(Command):
    """Watch optimizations learn in a live terminal view"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser._option_string_actions["--json"].help = NO_JSON
        parser.epilog = ("Keys: arrows and enter navigate, escape goes back, r refreshes now, ? shows keys, "
                         "q quits. Read-only: only GET requests are sent.")
        parser.add_argument("optimization", nargs="?", help="open this optimization (ID or unique prefix)")
        parser.add_argument("--refresh", type=refresh_seconds, default=10.0, metavar="SECONDS",
                            help="seconds between refreshes (default 10, minimum 2)")
        parser.add_argument("--once", action="store_true",
                            help="make one round of requests, print one frame to stdout and exit")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        if parsed_args.json or getattr(self.app.options, "json", False):
            raise UsageError("--json is not supported by `levered dashboard`, a terminal UI; "
                             "use --once for one text frame")
        from levered_dashboard import session

        wanted = parsed_args.optimization and self.client.optimizations.resolve(parsed_args.optimization)
        if parsed_args.once:
            frame = session.once(self.client, parsed_args.refresh, wanted or None)
            return Result.text(frame, {"frame": frame})
        session.run(self.client, parsed_args.refresh, wanted or None)
        return Result.text("", {})
