"""The global options of ``levered``, defined once for the cliff app and the help fast path."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "Optimize websites with bandits: metrics, optimizations, serving and results."


class _VersionAction(argparse.Action):
    """``--version`` anywhere on the line: the same report as the fast path, read only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from levered_core.versions import report

        sys.stdout.write(report())  # on stdout, as argparse's own version action prints
        parser.exit()


def build_parser(help_action: type[argparse.Action] | None = None) -> argparse.ArgumentParser:
    """Return the parser of the options that come before (or anywhere around) a command.

    :param help_action: the action for ``-h/--help``; by default help is deferred to the
        command, as cliff's ``deferred_help`` does.
    """
    parser = argparse.ArgumentParser(
        prog="levered", description=DESCRIPTION, add_help=False, allow_abbrev=False,
        usage="levered [--api-url URL] [--json] [--debug] [-v | -q] <command> [<args>]",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="Print the versions of levered, its plugins and Python, and exit.")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", dest="verbose_level", default=1,
                           help="Increase verbosity of output. Can be repeated.")
    verbosity.add_argument("-q", "--quiet", action="store_const", dest="verbose_level", const=0,
                           help="Suppress output except warnings and errors.")
    parser.add_argument("--log-file", metavar="PATH", help="Also write log messages to this file.")
    if help_action is None:
        parser.add_argument("-h", "--help", dest="deferred_help", action="store_true",
                            help="Show help and exit (after a command: that command's help).")
    else:
        parser.add_argument("-h", "--help", action=help_action, nargs=0, help="Show help and exit.")
    parser.add_argument("--debug", action="store_true",
                        help="Show tracebacks on errors and log each HTTP request to stderr.")
    parser.add_argument("--api-url", metavar="URL",
                        help="API base URL for this command (over LEVERED_API_URL and the config).")
    parser.add_argument("--json", action="store_true",
                        help="Print the API object as JSON on stdout and nothing else.")
    return parser
