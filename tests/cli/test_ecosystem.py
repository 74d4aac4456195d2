"""The extension story from outside: a wheel in a fresh environment, hooks, site policy, clashes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

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


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheels")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT, ROOT / "examples" / "levered-hello")
    assert built.returncode == 0, built.stderr
    return {path.name.split("-")[0]: path for path in out.glob("*.whl")}


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

    refused = run(levered, "plugins", "uninstall", "levered", env=env)
    assert refused.returncode == 2 and "refusing to uninstall levered itself" in refused.stderr
    removed = run(levered, "plugins", "uninstall", "levered-hello", env=env)
    assert removed.returncode == 0 and "Uninstalled hello (levered-hello)" in removed.stdout
    gone = run(levered, "hello", "whoami", env=env)
    assert gone.returncode == 2 and "not a levered command" in gone.stderr
    assert run(levered, "plugins", "list", "--json", env=env).returncode == 0


def test_uninstalling_something_that_is_not_a_plugin_is_refused(cli):
    run_ = cli("plugins", "uninstall", "requests")
    assert run_.exit_code == 2 and "requests is not a levered plugin" in run_.stderr
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
    assert cli("plugins", "list", "--json").json["hooks"] == [{
        "command": "optimizations create", "name": "cost-center", "target": "levered_acme_policy:CostCenterHook",
        "distribution": "levered-acme-policy"}]


def test_a_failing_hook_is_reported_with_its_name(cli, install_plugin, stub_api):
    install_plugin("levered-boom", """
        [levered.commands.v1.config_get]
        boom = levered_boom:Boom
        """, {"levered_boom/__init__.py": """
        from levered_core.plugin_api import CommandHook
        class Boom(CommandHook):
            def get_parser(self, parser): return parser
            def get_epilog(self): return None
            def before(self, parsed_args): raise RuntimeError("hook bug")
            def after(self, parsed_args, code): return code
        """})
    failed = cli("config", "get", "output")
    assert failed.exit_code == 1
    assert failed.stderr == ("Error: hook 'boom' (levered_boom:Boom) before 'config get' failed: "
                             "RuntimeError: hook bug\n")


def test_a_hook_that_cannot_load_is_a_warning(cli, install_plugin):
    install_plugin("levered-gone", """
        [levered.commands.v1.config_get]
        gone = levered_gone_missing:Hook
        """, {})
    run_ = cli("config", "get", "output")
    assert run_.exit_code == 0 and run_.stdout == "table\n"
    assert "warning: hook 'gone' (levered_gone_missing:Hook) for 'config get' failed to load" in run_.stderr


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
