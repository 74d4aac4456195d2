"""Show commands: readable text by default, cliff's ``-f``/``-c`` on the API object's fields, ``--json``."""

from __future__ import annotations

import pytest

OID = "699ede80-c94b-4f98-9c79-dd3e07748703"
MID = "0b6f4a52-2f7d-4a77-9a39-7f0e7c3f9f11"
METRIC = "5c1b3a4e-8d2f-4c55-b1a0-2f0c9d7e6a10"
META = {"request_id": "req_aaaaaaaaaaaaaaaaaaaaaaaa", "organization_id": "org_1"}
OPTIMIZATION = {
    "id": OID, "name": "Homepage hero", "status": "live", "model_type": "contextual", "model_status": "trained",
    "model_id": MID, "reward_metric_id": METRIC, "holdout_percentage": 10, "variants_count": 2,
    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
    "training_data_config": {"design_factors": [{"name": "headline", "levels": ["Ship", "Build"]}],
                             "reward": {"name": "signup", "type": "binary"},
                             "attribution": {"conversion_window_hours": 24}},
    "meta": META,
}
STATE = {"model_id": MID, "optimization_id": OID, "model_type": "contextual", "status": "untrained",
         "version": None, "observations": 0, "last_run": None, "variants": [], "meta": META}
WAREHOUSE = {"provider": "bigquery", "managed": False, "dataset_id": "levered", "exposures_table": "exposures",
             "connected": True, "latency_ms": 12, "meta": META}
ME = {"user": {"email": "ada@example.com", "name": "Ada"}, "organization": {"id": "org_1", "name": "Acme"},
      "meta": META}

# (argv, path, body, readable text, a top-level field and its `-f value` line)
CASES = {
    "optimizations show": (("optimizations", "show", OID), f"/api/v2/optimizations/{OID}", OPTIMIZATION,
                           "Design factors (2 variants served", "status", "live"),
    "models state": (("models", "state", MID), f"/api/v2/models/{MID}/state", STATE,
                     "not trained yet", "optimization_id", OID),
    "warehouse status": (("warehouse", "status"), "/api/v2/warehouse/status", WAREHOUSE,
                         "Status     connected (12 ms)", "provider", "bigquery"),
    "whoami": (("whoami",), "/api/v2/me", ME, "Organization  Acme (org_1)", "organization",
               '{"id":"org_1","name":"Acme"}'),
}


@pytest.fixture
def show(cli, stub_api):
    def run(name, *extra):
        argv, path, body, *_ = CASES[name]
        stub_api.add("GET", path, 200, body)
        return cli(*argv, *extra, env={"LEVERED_API_URL": stub_api.url, "LEVERED_API_KEY": "lvk_" + "k" * 43})

    return run


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_output_stays_the_readable_text(show, name):
    run = show(name)
    assert run.exit_code == 0, run.stderr
    assert CASES[name][3] in run.stdout
    assert "+----" not in run.stdout and not run.stdout.lstrip().startswith("{")


@pytest.mark.parametrize("name", sorted(CASES))
def test_format_json_prints_the_top_level_fields_objects_as_objects(show, name):
    run = show(name, "-f", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json == CASES[name][2]


@pytest.mark.parametrize("name", sorted(CASES))
def test_format_value_with_a_column_prints_one_field(show, name):
    _, _, _, _, field, line = CASES[name]
    run = show(name, "-f", "value", "-c", field)
    assert run.exit_code == 0, run.stderr
    assert run.stdout == line + "\n"
    table = show(name, "-c", field)  # -c alone also switches to the field table
    assert table.exit_code == 0 and f"| {field}" in table.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_flag_still_prints_the_api_object(show, name):
    run = show(name, "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json == CASES[name][2]


def test_unknown_column_of_a_show_command_is_a_usage_error(show):
    run = show("warehouse status", "-c", "nope")
    assert run.exit_code == 2
    assert run.stderr.startswith("Error: unknown column 'nope'; columns: provider, managed,")
    assert "Traceback" not in run.stderr


def test_config_get_takes_the_formatter_options(cli):
    assert cli("config", "get", "timeout").stdout == "30\n"
    assert cli("config", "get", "timeout", "-f", "json").json == {"timeout": 30}
    assert cli("config", "get", "timeout", "-f", "value", "-c", "timeout").stdout == "30\n"
    assert cli("config", "get", "timeout", "-f", "shell").stdout == 'timeout="30"\n'
    assert cli("config", "get", "timeout", "-f", "yaml").stdout == "timeout: 30\n"
    assert cli("config", "get", "timeout", "--json").json == {"timeout": 30}


def test_explicit_format_wins_over_the_output_json_setting(cli):
    cli("config", "set", "output", "json")
    assert cli("config", "get", "timeout").json == {"timeout": 30}
    assert cli("config", "get", "timeout", "-f", "value", "-c", "timeout").stdout == "30\n"
