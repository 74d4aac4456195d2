"""Help, version and command lookup through the installed ``levered`` executable."""

from __future__ import annotations

import re

from levered_core import __version__

BUILTIN_GROUPS = ("auth", "config", "dashboard", "metrics", "models", "optimizations", "plugins",
                  "serve", "warehouse")


def test_version_prints_the_core_version(cli):
    run = cli("--version")
    assert run.exit_code == 0
    assert run.stdout.splitlines()[0] == f"levered {__version__}"  # then the plugins: tests/packaging


def test_help_lists_every_installed_group_with_its_summary(cli):
    run = cli("--help")
    assert run.exit_code == 0, run.stderr
    commands = run.stdout.split("Commands:\n", 1)[1]
    for group in BUILTIN_GROUPS:
        assert re.search(rf"^  {group} +\S", commands, re.M), f"{group} missing:\n{commands}"
    assert "Create, manage and inspect optimizations" in commands
    assert "--api-url URL" in run.stdout and "--json" in run.stdout
    assert run.stderr == ""


def test_no_arguments_prints_help_instead_of_a_repl(cli):
    run = cli()
    assert run.exit_code == 0
    assert "Commands:" in run.stdout
    assert "(levered)" not in run.stdout


def test_help_is_the_same_through_cliff_and_the_fast_path(cli):
    fast = cli("--help")
    through_cliff = cli("--debug", "-v", "--help")  # not a fast-path shape: cliff renders it
    assert fast.stdout == through_cliff.stdout
    assert cli("help").stdout == fast.stdout


def test_group_help_lists_its_commands(cli):
    for args in (("config", "--help"), ("help", "config"), ("config",), ("config", "-h")):
        run = cli(*args)
        assert run.exit_code == 0, (args, run.stderr)
        assert re.search(r"^  get +Print the effective value of one setting$", run.stdout, re.M), run.stdout
        assert re.search(r"^  set ", run.stdout, re.M) and re.search(r"^  list ", run.stdout, re.M)


EMPTY_GROUP = {"levered_empty/__init__.py": """
    from levered_core.plugin_api import CommandGroup
    GROUP = CommandGroup("empty", "A group whose commands are not written yet", api_version=1)
"""}


def test_group_without_commands_says_so(cli, install_plugin):
    install_plugin("levered-empty", "[levered.groups.v1]\nempty = levered_empty:GROUP\n", EMPTY_GROUP)
    run = cli("empty", "--help")
    assert run.exit_code == 0
    assert "no commands installed" in run.stdout


def test_help_for_a_command_shows_its_options(cli):
    for args in (("help", "config", "set"), ("config", "set", "--help")):
        run = cli(*args)
        assert run.exit_code == 0, run.stderr
        assert "usage: levered config set" in run.stdout
        assert "--json" in run.stdout and "key" in run.stdout


def test_lister_keeps_cliffs_format_and_column_options(cli):
    run = cli("help", "config", "list")
    assert "-f {csv,json,table,value,yaml}" in run.stdout or "--format" in run.stdout
    assert "-c COLUMN" in run.stdout


def test_exit_codes_are_documented_by_help(cli):
    run = cli("help", "exit-codes")
    assert run.exit_code == 0
    for code in ("0", "1", "2", "3", "4", "130"):
        assert re.search(rf"^  {code} +\S", run.stdout, re.M)


def test_unknown_command_is_a_usage_error_with_a_suggestion(cli):
    run = cli("confg", "list")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert run.stderr.startswith("Error: 'confg' is not a levered command")
    assert "config" in run.stderr
    assert "Traceback" not in run.stderr


def test_unknown_command_of_a_group_names_the_group_commands(cli, install_plugin):
    run = cli("config", "frobnicate")
    assert run.exit_code == 2
    assert "its commands: get, list, set" in run.stderr
    install_plugin("levered-empty", "[levered.groups.v1]\nempty = levered_empty:GROUP\n", EMPTY_GROUP)
    run = cli("empty", "show")
    assert run.exit_code == 2
    assert "has no commands installed yet" in run.stderr


def test_help_for_an_unknown_command_is_the_same_usage_error(cli):
    plain = cli("nosuch")
    assert plain.exit_code == 2 and plain.stderr == "Error: 'nosuch' is not a levered command (see `levered --help`)\n"
    for args in (("nosuch", "--help"), ("help", "nosuch")):
        run = cli(*args)
        assert (run.exit_code, run.stdout, run.stderr) == (2, "", plain.stderr), args
    in_group = cli("optimizations", "nosuch")
    assert in_group.exit_code == 2 and "its commands: archive, create" in in_group.stderr
    for args in (("help", "optimizations", "nosuch"), ("optimizations", "nosuch", "--help")):
        run = cli(*args)
        assert (run.exit_code, run.stdout, run.stderr) == (2, "", in_group.stderr), args


def test_global_options_alone_print_help_and_succeed(cli):
    for args in (("-v",), ("-q",), ("--json",), ("-v", "-v")):
        run = cli(*args)
        assert run.exit_code == 0, args
        assert "Commands:" in run.stdout


def test_bad_flag_is_a_usage_error(cli):
    run = cli("config", "get", "--no-such-flag", "output")
    assert run.exit_code == 2
    assert "unrecognized arguments" in run.stderr


def test_bash_completion_covers_groups_and_commands(cli):
    run = cli("complete", "--shell", "bash")
    assert run.exit_code == 0, run.stderr
    assert "_levered()" in run.stdout
    assert "config" in run.stdout and "plugins" in run.stdout
    assert "--json" in run.stdout
