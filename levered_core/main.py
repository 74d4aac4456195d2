"""The ``levered`` console script.

Help, version and group listings are answered here from the cached manifest, without
importing cliff or any plugin: they are what people type most and wait for most. Everything
else goes to the cliff application in :mod:`levered_core.app`.
"""

from __future__ import annotations

import sys

HELP_FLAGS = ("-h", "--help")


def _fast_path(argv: list[str]) -> int | None:
    """Answer ``--version``, ``--help`` and group help; ``None`` means "let cliff run it"."""
    if argv == ["--version"]:
        from levered_core.versions import report

        sys.stdout.write(report())
        return 0
    debug = "--debug" in argv
    words = [arg for arg in argv if arg != "--debug"]
    if words[:1] == ["help"]:
        target = words[1:]
        if target == ["exit-codes"]:
            from levered_core.help import exit_codes_help

            sys.stdout.write(exit_codes_help())
            return 0
    elif words[-1:] and words[-1] in HELP_FLAGS:
        target = words[:-1]
    elif len(words) <= 1:
        target = words  # no arguments, or a bare group name: show help, not cliff's REPL
    else:
        return None
    if len(target) > 1 or any(word.startswith("-") for word in target):
        return None
    return _print_help(target[0] if target else None, debug)


def _print_help(group: str | None, debug: bool) -> int | None:
    from levered_core import help as help_module
    from levered_core import manifest as manifest_module

    try:
        manifest = manifest_module.load()
    except Exception as exc:  # e.g. a malformed site config: one line, as the cliff path says it
        from levered_core.errors import describe, exit_code_for

        sys.stderr.write(f"Error: cannot list installed plugins: {describe(exc)}\n")
        return exit_code_for(exc)
    if group is not None and (group not in manifest["groups"] or group in manifest["commands"]):
        return None  # a command (``serve --help``) or an unknown word: cliff answers
    manifest_module.report_problems(manifest, debug)
    if group is None:
        sys.stdout.write(help_module.app_help(manifest, _options_help()))
    else:
        sys.stdout.write(help_module.group_help(manifest, group))
    return 0


def _options_help() -> str:
    from levered_core.globalopts import build_parser

    return build_parser().format_help()


def main(argv: list[str] | None = None) -> int:
    """Run ``levered`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args: list[str] = sys.argv[1:] if argv is None else list(argv)
    try:
        code = _fast_path(args)
        if code is not None:
            return code
    except BrokenPipeError:
        return 141
    from levered_core.app import run

    return run(args)

