"""The extension story from outside: a wheel in a fresh environment, hooks, site policy, clashes."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.cli.test_plugins import HELLO_GROUP

ROOT = pathlib.Path(__file__).resolve().parents[2]
METRIC = "8a3b12c4-5678-4def-abcd-1234567890ab"
CREATED = {
    "id": "699ede80-c94b-4f98-9c79-dd3e07748703", "name": "Hero", "status": "live", "model_type": "mab",
    "model_id": "4754cae0-9a5d-4691-91af-6d15ccc1f82e", "model_status": "untrained", "holdout_percentage": 10,
    "reward_metric_id": METRIC, "excluded_combinations": [], "variants_count": 2, "winner": None,
    "training_data_config": {"design_factors": [{"name": "h", "dtype": "str", "levels": ["a", "b"]}],
                             "context_factors": [], "reward": {"name": "reward", "type": "bool"},
                             "attribution": {"type": "last_touch", "conversion_window_hours": 24}},
    "created_at": "2026-11-19T09:00:00Z", "updated_at": "2026-11-19T09:00:00Z", "summary": None,
    "meta": {"request_id": "req_created"}}
CREATE = ("optimizations", "create", "--name", "Hero", "--design-factors", '[{"name": "h", "levels": ["a", "b"]}]',
          "--reward-metric-id", METRIC)


def run(*argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, **kwargs)


LEFTOVERS = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".venv*", ".tox", "dist")


def copy_source(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Copy a project to build it there: an in-tree build would leave build/ and *.egg-info behind."""
    shutil.copytree(source, target, ignore=LEFTOVERS)
    return target


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    out, src = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("src")
    core = src / "levered"
    core.mkdir()
    for name in ("setup.py", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, core / name)
    copy_source(ROOT / "levered_core", core / "levered_core")
    projects = [copy_source(ROOT / "examples" / name, src / name) for name in ("levered-hello", "levered-acme-policy")]
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, core, *projects)
    assert built.returncode == 0, built.stderr
    return {path.name.split("-")[0]: path for path in out.glob("*.whl")}


def test_a_renamed_copy_of_the_template_ships_only_its_own_package(tmp_path):
    template = copy_source(ROOT / "examples" / "levered-hello", tmp_path / "levered-hello")
    first = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "w1", template)
    assert first.returncode == 0, first.stderr
    assert (template / "build").exists()  # what a copy of a built template carries along
    (template / "levered_hello").rename(template / "levered_howdy")
    setup_cfg = template / "setup.cfg"
    setup_cfg.write_text(setup_cfg.read_text().replace("levered_hello", "levered_howdy")
                         .replace("levered-hello", "levered-howdy"))
    second = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "w2", template)
    assert second.returncode == 0, second.stderr
    [wheel] = (tmp_path / "w2").glob("*.whl")
    packages = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist() if "dist-info" not in name}
    assert packages == {"levered_howdy"}


def test_the_template_plugin_installs_runs_and_uninstalls_in_a_fresh_environment(wheels, tmp_path, stub_api):
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", venv).returncode == 0
    installed = run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheels["levered"])
    assert installed.returncode == 0, installed.stderr
    env = {"LEVERED_HOME": str(tmp_path / "home"), "LEVERED_SITE_CONFIG": str(tmp_path / "none.json"),
           "LEVERED_API_URL": stub_api.url, "LEVERED_API_KEY": "lvk_test", "PATH": "/usr/bin:/bin"}
    levered = venv / "bin" / "levered"
    commands = run(levered, "--help", env=env).stdout.split("Commands:")[1]
    assert "plugins" in commands and "hello" not in commands and "optimizations" not in commands

    added = run(levered, "plugins", "install", wheels["levered_hello"], env=env)
    assert added.returncode == 0, added.stderr
    assert "Installed hello (levered-hello 0.1.0): loaded, 2 commands" in added.stdout
    stub_api.add("GET", "/api/v2/me", 200, {"user": {"email": "ada@acme.test"}, "organization": {"name": "Acme"}})
    whoami = run(levered, "hello", "whoami", "-f", "value", env=env)
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.split("\n")[0] == "ada@acme.test"
    stub_api.add("GET", "/api/v2/optimizations", 200, {"optimizations": [
        {"name": "Hero", "status": "live"}, {"name": "Pricing", "status": "completed"}], "meta": {"request_id": "r"}})
    listed = run(levered, "hello", "optimizations", "--limit", "2", "-f", "csv", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ['"Name","Status"', '"Hero","live"', '"Pricing","completed"']
    assert stub_api.requests[-1]["query"] == "limit=2"

    again = run(levered, "plugins", "install", "-U", wheels["levered_hello"], env=env)
    assert again.returncode == 0, again.stderr
    assert "hello (levered-hello 0.1.0): loaded, 2 commands" in again.stdout
    assert not again.stdout.startswith("Installed") and "No levered plugin" not in again.stdout
    hook = run(levered, "plugins", "install", wheels["levered_acme_policy"], env=env)
    assert hook.returncode == 0, hook.stderr
    assert hook.stdout == "Installed hook cost-center on 'optimizations create' (levered-acme-policy 0.1.0): loaded\n"

    refused = run(levered, "plugins", "uninstall", "levered", env=env)
    assert refused.returncode == 2 and "refusing to uninstall levered itself" in refused.stderr
    removed = run(levered, "plugins", "uninstall", "levered_hello", "Levered.Acme_Policy", env=env)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.splitlines() == [
        "Uninstalled hello (levered-hello)", "Uninstalled hook cost-center on 'optimizations create' (levered-acme-policy)"]
    gone = run(levered, "hello", "whoami", env=env)
    assert gone.returncode == 2 and "not a levered command" in gone.stderr
    after = run(levered, "plugins", "list", "--json", env=env)
    assert after.returncode == 0 and json.loads(after.stdout)["hooks"] == []


def test_uninstalling_something_that_is_not_a_plugin_is_refused(cli):
    run_ = cli("plugins", "uninstall", "requests")
    assert run_.exit_code == 2 and "requests is not a levered plugin" in run_.stderr
    assert run_.stderr.count("\n") == 1
    run_ = cli("plugins", "uninstall", "no-such-distribution-xyz")
    assert run_.exit_code == 2 and "is not installed" in run_.stderr


@pytest.fixture
def acme(install_plugin):
    source = (ROOT / "examples" / "levered-acme-policy" / "levered_acme_policy" / "__init__.py").read_text()
    install_plugin("levered-acme-policy", """
        [levered.commands.v1.optimizations_create]
        cost-center = levered_acme_policy:CostCenterHook
        """, {"levered_acme_policy/__init__.py": source})


def api_env(stub_api):
    return {"LEVERED_API_URL": stub_api.url, "LEVERED_API_KEY": "lvk_test"}


def test_a_hook_adds_an_option_and_its_help(cli, acme):
    shown = cli("optimizations", "create", "--help")
    assert "--cost-center CODE" in shown.stdout and "ACME policy: --cost-center is required." in shown.stdout


def test_a_hook_runs_before_and_can_refuse_before_anything_is_sent(cli, acme, stub_api):
    refused = cli(*CREATE, env=api_env(stub_api))
    assert refused.exit_code == 2
    assert refused.stderr == "Error: ACME policy: --cost-center CODE is required for optimizations create\n"
    assert stub_api.requests == []


def test_a_hook_runs_after_and_records_the_created_object(cli, acme, stub_api, home):
    stub_api.add("POST", "/api/v2/optimizations", 201, CREATED)
    created = cli(*CREATE, "--cost-center", "CC-42", env=api_env(stub_api))
    assert created.exit_code == 0, created.stderr
    assert stub_api.requests[0]["body"]["name"] == "Hero" and "cost_center" not in stub_api.requests[0]["body"]
    lines = (home / "cost-centers.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"optimization_id": CREATED["id"], "cost_center": "CC-42"}]
    [listed] = cli("plugins", "list", "--json").json["hooks"]
    assert {k: listed[k] for k in ("command", "name", "target", "distribution", "version", "status", "error")} == {
        "command": "optimizations create", "name": "cost-center", "target": "levered_acme_policy:CostCenterHook",
        "distribution": "levered-acme-policy", "version": "0.1.0", "status": "loaded", "error": None}
    row = [line for line in cli("plugins", "list", "-f", "csv").stdout.splitlines() if "cost-center" in line]
    assert row == [f'"hook cost-center","levered-acme-policy","0.1.0","loaded","optimizations create","{listed["location"]}"']


def install_boom(install_plugin, failing: str, command: str = "config_get"):
    """A hook whose method ``failing`` raises RuntimeError('hook bug')."""
    methods = {"get_parser": "return parser", "get_epilog": "return None", "before": "return parsed_args",
               "after": "return code"}
    methods[failing] = "raise RuntimeError('hook bug')"
    args = {"get_parser": "parser", "get_epilog": "", "before": "parsed_args", "after": "parsed_args, code"}
    body = "\n".join(f"    def {m}(self{', ' if args[m] else ''}{args[m]}): {line}" for m, line in methods.items())
    install_plugin("levered-boom", f"""
        [levered.commands.v1.{command}]
        boom = levered_boom:Boom
        """, {"levered_boom/__init__.py": "from levered_core.plugin_api import CommandHook\n"
                                          f"class Boom(CommandHook):\n{body}\n"})


@pytest.mark.parametrize("method,doing", [("before", "before"), ("after", "after"),
                                          ("get_parser", "adding options to"), ("get_epilog", "adding help to")])
def test_a_failing_hook_is_reported_with_its_name(cli, install_plugin, method, doing):
    install_boom(install_plugin, method)
    failed = cli("config", "get", "output")
    assert failed.exit_code == 1
    assert failed.stderr == (f"Error: hook 'boom' of levered-boom (levered_boom:Boom) {doing} 'config get' failed: "
                             "RuntimeError: hook bug\n")


def test_a_hook_failing_in_get_parser_is_named_in_help_too(cli, install_plugin):
    install_boom(install_plugin, "get_parser")
    for args in (("config", "get", "--help"), ("help", "config", "get")):
        failed = cli(*args)
        assert failed.exit_code == 1, args
        assert "Error: hook 'boom' of levered-boom (levered_boom:Boom) adding options to 'config get' failed: " \
               "RuntimeError: hook bug" in failed.stderr and "please report it" not in failed.stderr


def test_a_hook_that_cannot_load_is_a_warning(cli, install_plugin):
    install_plugin("levered-gone", """
        [levered.commands.v1.config_get]
        gone = levered_gone_missing:Hook
        """, {})
    run_ = cli("config", "get", "output")
    assert run_.exit_code == 0 and run_.stdout == "table\n"
    assert "warning: hook 'gone' (levered_gone_missing:Hook) for 'config get' failed to load" in run_.stderr
    [hook] = cli("plugins", "list", "--json").json["hooks"]
    assert hook["status"] == "failed" and "No module named 'levered_gone_missing'" in hook["error"]


def site(tmp_path, plugins):
    (tmp_path / "site-config.json").write_text(json.dumps({"plugins": plugins}))


def statuses(cli):
    return {p["group"]: (p["status"], p["error"]) for p in cli("plugins", "list", "--json").json["plugins"]}


def test_the_site_deny_list_disables_a_plugin(cli, tmp_path):
    site(tmp_path, {"deny": ["levered-warehouse"]})
    status, reason = statuses(cli)["warehouse"]
    assert status == "disabled" and "denied by the site config" in reason
    assert cli("warehouse", "tables").exit_code == 2
    assert cli("config", "get", "output").exit_code == 0


def test_the_site_allow_list_keeps_only_named_plugins_and_the_core(cli, tmp_path):
    site(tmp_path, {"allow": ["config"]})
    found = statuses(cli)
    assert found["config"][0] == "loaded" and found["plugins"][0] == "loaded"
    assert found["optimizations"][0] == "disabled" and "allow-list" in found["optimizations"][1]
    restricted = cli("plugins", "list", "--json", env={"LEVERED_LOAD_PLUGINS": "optimizations"}).json["plugins"]
    assert {p["group"]: p["status"] for p in restricted}["optimizations"] == "disabled"


def test_the_site_config_can_let_a_plugin_replace_a_builtin_command(cli, tmp_path, install_plugin):
    install_plugin("levered-evil", """
        [levered.groups.v1]
        evil = levered_evil:GROUP
        [levered.commands.v1]
        config get = levered_evil:Replace
        """, {"levered_evil/__init__.py": HELLO_GROUP.format(api=1).replace('"hello"', '"evil"') + """
    from levered_core.plugin_api import Command, Result
    class Replace(Command):
        '''Replace'''
        def get_parser(self, prog_name):
            parser = super().get_parser(prog_name)
            parser.add_argument("key")
            return parser
        def take_action(self, parsed_args):
            return Result.text("replaced", {})
    """})
    assert cli("config", "get", "output").stdout == "table\n"
    site(tmp_path, {"override": {"config get": "levered-evil"}})
    replaced = cli("config", "get", "output")
    assert replaced.stdout == "replaced\n"
    assert "kept the one from levered-evil" in replaced.stderr


def test_the_site_deny_list_applies_to_hooks(cli, acme, stub_api, tmp_path, home):
    site(tmp_path, {"deny": ["levered_acme_policy"]})  # any spelling of the distribution's name
    stub_api.add("POST", "/api/v2/optimizations", 201, CREATED)
    created = cli(*CREATE, env=api_env(stub_api))
    assert created.exit_code == 0, created.stderr
    assert "--cost-center" not in cli("optimizations", "create", "--help").stdout
    assert not (home / "cost-centers.jsonl").exists()
    [hook] = cli("plugins", "list", "--json").json["hooks"]
    assert hook["status"] == "disabled" and "denied by the site config" in hook["error"]
    row = [line for line in cli("plugins", "list").stdout.splitlines() if "cost-center" in line]
    assert len(row) == 1 and "disabled: denied by the site config" in row[0]


def test_the_site_allow_list_and_load_plugins_apply_to_hooks(cli, acme, tmp_path):
    site(tmp_path, {"allow": ["optimizations"]})
    assert cli("plugins", "list", "--json").json["hooks"][0]["status"] == "disabled"
    assert "--cost-center" not in cli("optimizations", "create", "--help").stdout
    site(tmp_path, {"allow": ["optimizations", "levered-acme-policy"]})
    assert cli("plugins", "list", "--json").json["hooks"][0]["status"] == "loaded"
    assert "--cost-center" in cli("optimizations", "create", "--help").stdout
    narrowed = {"LEVERED_LOAD_PLUGINS": "optimizations"}
    [hook] = cli("plugins", "list", "--json", env=narrowed).json["hooks"]
    assert hook["status"] == "disabled" and hook["error"] == "not in LEVERED_LOAD_PLUGINS"
    assert "--cost-center" not in cli("optimizations", "create", "--help", env=narrowed).stdout


def test_install_reports_what_is_installed_already_and_what_is_not_a_plugin(cli):
    # Both are installed in the test environment, so pip changes nothing and needs no index.
    run_ = cli("plugins", "install", "levered_config", "requests")
    assert run_.exit_code == 0, run_.stderr
    assert run_.stdout.splitlines() == [
        "Already installed config (levered-config 0.1.0): loaded, 5 commands",
        "requests is not a levered plugin: it declares no command group and no command hook"]
    assert [p["change"] for p in cli("plugins", "install", "levered-config", "--json").json["installed"]] == [
        "already installed"]
