"""Plugin discovery: listing, isolation of broken plugins, versions, clashes, uninstalling."""

from __future__ import annotations

import json
import pathlib
import shutil

from levered_core import plugin_api
from levered_core.testing import run_cli
from tests.conftest import groups_of

ROOT = pathlib.Path(__file__).resolve().parents[2]

HELLO_GROUP = """
    from levered_core.plugin_api import CommandGroup
    GROUP = CommandGroup("hello", "Say hello", api_version={api})
"""
HELLO_COMMANDS = """
    from levered_core.plugin_api import Command, Result

    class SayHello(Command):
        '''Say hello to someone'''

        def get_parser(self, prog_name):
            parser = super().get_parser(prog_name)
            parser.add_argument("name")
            return parser

        def take_action(self, parsed_args):
            return Result.text(f"hello, {parsed_args.name}", {"greeting": parsed_args.name})
"""


def install_hello(install_plugin, api: int = 1, extra_commands: str = "", extra_files: dict | None = None):
    return install_plugin(
        "levered-hello",
        f"""
        [levered.groups.v1]
        hello = levered_hello:GROUP
        [levered.commands.v1]
        hello say = levered_hello.commands:SayHello
        {extra_commands}
        """,
        {"levered_hello/__init__.py": HELLO_GROUP.format(api=api), "levered_hello/commands.py": HELLO_COMMANDS,
         **(extra_files or {})},
    )


def test_plugins_list_shows_each_group_its_distribution_and_status(cli):
    run = cli("plugins", "list", "--json")
    assert run.exit_code == 0, run.stderr
    groups = groups_of(run)
    assert groups["config"]["distribution"] == "levered-config"
    assert groups["config"]["status"] == "loaded" and groups["config"]["error"] is None
    assert groups["config"]["commands"] == ["config get", "config list", "config set", "env", "env use"]
    assert isinstance(groups["config"]["editable"], bool)
    assert groups["config"]["location"].endswith(("levered-config", "site-packages"))
    assert groups["plugins"]["distribution"] == "levered"
    assert groups["dashboard"]["commands"] == ["dashboard"]
    assert "optimizations create" in groups["optimizations"]["commands"]
    assert run.json["plugin_api_version"] == 1
    table = cli("plugins", "list")
    assert "levered-config" in table.stdout and "loaded" in table.stdout


def test_a_third_party_plugin_is_found_like_a_builtin_one(cli, install_plugin):
    install_hello(install_plugin)
    assert "Say hello" in cli("--help").stdout
    run = cli("hello", "say", "Ada", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json == {"greeting": "Ada"}
    assert cli("hello", "say", "Ada").stdout == "hello, Ada\n"


def test_uninstalling_a_plugin_removes_exactly_its_commands(cli, install_plugin, plugin_dir):
    dist_info = install_hello(install_plugin)
    before = cli("--help").stdout
    assert cli("hello", "say", "x").exit_code == 0
    shutil.rmtree(dist_info)
    shutil.rmtree(plugin_dir / "levered_hello")
    after = cli("--help").stdout
    assert [line for line in before.splitlines() if line not in after.splitlines()] == ["  hello          Say hello"]
    run = cli("hello", "say", "x")
    assert run.exit_code == 2 and "not a levered command" in run.stderr
    assert cli("config", "get", "output").exit_code == 0


def test_a_plugin_that_fails_to_import_costs_one_warning_line(cli, install_plugin):
    install_plugin("levered-broken", """
        [levered.groups.v1]
        broken = levered_broken:GROUP
        [levered.commands.v1]
        broken boom = levered_broken:Boom
        """, {"levered_broken/__init__.py": "import no_such_module_anywhere\n"})
    for args in (("--help",), ("config", "get", "output")):
        run = cli(*args)
        assert run.exit_code == 0
        assert run.stderr.splitlines() == [
            "levered: warning: plugin 'broken' (levered-broken 0.1.0) failed to load: ModuleNotFoundError: "
            "No module named 'no_such_module_anywhere' (run with --debug for the traceback)"]
    assert "broken" not in cli("--help").stdout.split("Commands:")[1]
    debug = cli("--debug", "config", "get", "output")
    assert "Traceback (most recent call last)" in debug.stderr and debug.exit_code == 0
    listed = groups_of(cli("plugins", "list", "--json"))["broken"]
    assert listed["status"] == "failed" and "no_such_module_anywhere" in listed["error"]


def test_a_command_module_that_fails_is_skipped_alone(cli, install_plugin):
    install_hello(install_plugin, extra_commands="hello crash = levered_hello.crash:Crash",
                  extra_files={"levered_hello/crash.py": "raise RuntimeError('bad build')\n"})
    run = cli("hello", "say", "Bo")
    assert run.exit_code == 0 and run.stdout == "hello, Bo\n"
    assert "command 'hello crash' of levered-hello failed to load: RuntimeError: bad build" in run.stderr
    # The command itself, and plugins list, say what is missing (not "not a levered command").
    crash = cli("hello", "crash")
    assert crash.exit_code == 1
    assert crash.stderr.splitlines()[-1].startswith(
        "Error: command 'hello crash' failed to load: RuntimeError: bad build (levered-hello ")
    listed = cli("plugins", "list", "--json").json
    hello = next(p for p in listed["plugins"] if p["group"] == "hello")
    assert hello["status"] == "partial" and hello["commands"] == ["hello say"]
    assert hello["error"] == "command 'hello crash' failed to load: RuntimeError: bad build"


def test_a_plugin_for_another_api_version_is_refused_clearly(cli, install_plugin):
    install_hello(install_plugin, api=2)
    run = cli("hello", "say", "x")
    assert run.exit_code == 2
    assert ("plugin 'hello' (levered-hello 0.1.0) was built for plugin API v2, but levered 0.1.0 supports v1"
            in run.stderr)
    assert groups_of(cli("plugins", "list", "--json"))["hello"]["status"] == "incompatible"


def test_a_plugin_cannot_silently_replace_a_builtin_command(cli, install_plugin):
    install_plugin("levered-evil", """
        [levered.groups.v1]
        evil = levered_evil:GROUP
        [levered.commands.v1]
        config get = levered_evil:Steal
        """, {"levered_evil/__init__.py": HELLO_GROUP.format(api=1).replace('"hello"', '"evil"') + """
    from levered_core.plugin_api import Command, Result
    class Steal(Command):
        '''Steal'''
        def take_action(self, parsed_args):
            return Result.text("stolen", {})
    """})
    run = cli("config", "get", "output")
    assert run.stdout == "table\n"
    assert "command 'config get' of levered-evil clashes with levered-config; kept the one from levered-config" \
        in run.stderr


def test_load_plugins_restricts_what_is_loaded(cli):
    run = cli("plugins", "list", "--json", env={"LEVERED_LOAD_PLUGINS": "config"})
    statuses = {name: plugin["status"] for name, plugin in groups_of(run).items()}
    assert statuses["config"] == "loaded" and statuses["plugins"] == "loaded"
    assert statuses["optimizations"] == "disabled"
    listed = cli("--help", env={"LEVERED_LOAD_PLUGINS": "config"}).stdout.split("Commands:")[1]
    assert "optimizations" not in listed and "config" in listed


def test_the_manifest_is_cached_and_rebuilt_when_plugins_change(cli, home, install_plugin):
    cli("--help")
    manifests = list((home / "cache").glob("plugins-*.json"))
    assert len(manifests) == 1
    first = manifests[0].stat().st_mtime_ns
    cli("--help")
    cli("config", "list")
    assert manifests[0].stat().st_mtime_ns == first
    install_hello(install_plugin)
    assert "hello" in cli("--help").stdout
    assert manifests[0].stat().st_mtime_ns != first


EVIL_COMMAND = """
    from levered_core.plugin_api import Command, CommandGroup, Result
    GROUP = CommandGroup({group!r}, "Evil", api_version=1)

    class Steal(Command):
        '''Steal a built-in name'''
        def take_action(self, parsed_args):
            return Result.text("stolen", {{}})
"""


def install_evil(install_plugin, group: str, commands: str, name: str = "aaa-evil"):
    """A third-party distribution named to sort before every built-in one."""
    return install_plugin(name, f"""
        [levered.groups.v1]
        {group} = aaa_evil:GROUP
        [levered.commands.v1]
        {commands}
        """, {"aaa_evil/__init__.py": EVIL_COMMAND.format(group=group)})


def test_a_plugin_cannot_take_over_a_builtin_group_by_its_name(cli, install_plugin):
    install_evil(install_plugin, "optimizations", "optimizations list = aaa_evil:Steal")
    run = cli("optimizations", "list", "--help")
    assert run.exit_code == 0 and "Steal a built-in name" not in run.stdout
    assert ("plugin 'optimizations' (aaa-evil 0.1.0) declares group 'optimizations', already provided by "
            "levered-optimizations; its commands join that group") in run.stderr
    assert ("command 'optimizations list' of aaa-evil clashes with levered-optimizations; kept the one from "
            "levered-optimizations") in run.stderr
    listed = cli("plugins", "list", "--json").json["plugins"]
    owners = {(p["group"], p["distribution"]): p["status"] for p in listed}
    assert owners[("optimizations", "levered-optimizations")] == "loaded"
    assert owners[("optimizations", "aaa-evil")] == "clash"
    assert "Evil" not in cli("--help").stdout


def test_a_plugin_cannot_replace_a_builtin_top_level_command(cli, install_plugin, stub_api):
    install_evil(install_plugin, "evil", "whoami = aaa_evil:Steal")
    stub_api.add("GET", "/api/v2/me", 200, {"user": {"email": "ada@acme.test"},
                                            "organization": {"id": "org_1", "name": "Acme"}})
    run = cli("whoami", "--json", env={"LEVERED_API_URL": stub_api.url, "LEVERED_API_KEY": "lvk_test"})
    assert run.exit_code == 0, run.stderr
    assert run.json["user"]["email"] == "ada@acme.test"
    assert "command 'whoami' of aaa-evil clashes with levered-auth; kept the one from levered-auth" in run.stderr


def test_a_plugin_group_named_like_a_builtin_command_is_a_clash(cli, install_plugin):
    install_evil(install_plugin, "whoami", "whoami = aaa_evil:Steal")
    run = cli("plugins", "list", "--json")
    evil = [p for p in run.json["plugins"] if p["distribution"] == "aaa-evil"][0]
    assert evil["status"] == "clash"
    assert "the name of the built-in command 'whoami' of levered-auth" in evil["error"]
    assert "Evil" not in cli("--help").stdout


def test_the_site_config_can_give_a_builtin_group_to_a_plugin(cli, install_plugin, tmp_path):
    install_evil(install_plugin, "config", "config get = aaa_evil:Steal")
    assert cli("config", "get", "output").stdout == "table\n"
    (tmp_path / "site-config.json").write_text(json.dumps({"plugins": {"override": {"config": "aaa_evil"}}}))
    run = cli("config", "get")
    assert run.stdout == "stolen\n"
    assert "command 'config get' of levered-config clashes with aaa-evil; kept the one from aaa-evil" in run.stderr
    owners = {(p["group"], p["distribution"]): p["status"] for p in cli("plugins", "list", "--json").json["plugins"]}
    assert owners[("config", "aaa-evil")] == "loaded" and owners[("config", "levered-config")] == "clash"


def test_run_cli_ignores_the_hosts_site_config(tmp_path, monkeypatch):
    deny = tmp_path / "deny.json"
    deny.write_text(json.dumps({"plugins": {"deny": ["levered-warehouse"]}}))
    monkeypatch.setenv("LEVERED_SITE_CONFIG", str(deny))
    home = tmp_path / "home"
    inherited = groups_of(run_cli("plugins", "list", "--json", home=home))
    assert inherited["warehouse"]["status"] == "loaded"
    passed = groups_of(run_cli("plugins", "list", "--json", home=home, env={"LEVERED_SITE_CONFIG": str(deny)}))
    assert passed["warehouse"]["status"] == "disabled"


def test_plugin_api_home_is_the_levered_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LEVERED_HOME", str(tmp_path / "h"))
    assert plugin_api.home() == tmp_path / "h"
    monkeypatch.delenv("LEVERED_HOME")
    assert plugin_api.home() == pathlib.Path.home() / ".levered"
