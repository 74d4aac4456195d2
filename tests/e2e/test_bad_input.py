"""Bad input gets one clear line, the right exit code, and changes nothing on the server."""

from __future__ import annotations

import json

import pytest

FACTORS = json.dumps([{"name": "headline", "levels": ["A", "B"]}])
SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup'"


@pytest.fixture(scope="module")
def metric_id(server):
    status, body = server.api("POST", "/api/v2/warehouse/metrics", {
        "name": "Sign-ups", "sql": SQL, "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
    assert status == 201, body
    return body["id"]


@pytest.fixture(scope="module")
def live_optimization(server, metric_id):
    status, body = server.api("POST", "/api/v2/optimizations", {
        "name": "Hero", "reward_metric_id": metric_id, "training_data_config": {"design_factors": json.loads(FACTORS)}})
    assert status == 201, body
    return body


def refused(run, code: int, *fragments: str) -> None:
    assert run.exit_code == code, f"exit {run.exit_code}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.stderr.startswith("Error: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr


@pytest.mark.parametrize("flag_value,fragments", [
    ('[{"name": "headline", "levels": ["A", "B"]', ("--design-factors: invalid JSON at line 1, column 43",)),
    ('{"name": "headline"}', ("--design-factors must be a JSON array, got an object",)),
    ('[{"name": "headline"}]', ('--design-factors[0] (headline) is missing "levels"',)),
    ('[{"levels": ["A", "B"]}]', ('--design-factors[0] is missing "name"',)),
    ("@/no/such/factors.json", ("--design-factors: cannot read /no/such/factors.json",)),
])
def test_malformed_factors_are_refused_before_sending(levered, server, metric_id, flag_value, fragments):
    before = server.state()
    run = levered("optimizations", "create", "--name", "X", "--design-factors", flag_value,
                  "--reward-metric-id", metric_id)
    refused(run, 2, *fragments)
    assert server.state() == before


def test_server_side_validation_creates_nothing(levered, server, metric_id):
    before = server.state()
    run = levered("optimizations", "create", "--name", "X", "--reward-metric-id", metric_id,
                  "--design-factors", '[{"name": "headline", "levels": ["only one"]}]')
    refused(run, 1, "validation_error", "req_")
    assert server.state() == before


def test_server_side_validation_error_envelope_in_json_mode(levered, metric_id):
    run = levered("optimizations", "create", "--name", "X", "--reward-metric-id", metric_id, "--json",
                  "--design-factors", '[{"name": "h", "levels": ["a", "a"]}]')
    assert run.exit_code == 1
    assert run.json["error"]["code"] == "validation_error" and run.json["error"]["details"]["fields"]


@pytest.mark.parametrize("args", [
    ("optimizations", "show", "00000000-0000-4000-8000-000000000000"),
    ("optimizations", "results", "00000000-0000-4000-8000-000000000000"),
    ("models", "state", "00000000-0000-4000-8000-000000000000"),
    ("metrics", "preview", "00000000-0000-4000-8000-000000000000"),
])
def test_unknown_ids_exit_4(levered, args):
    refused(levered(*args), 4, "not_found")


def test_unknown_prefix_exits_4(levered, live_optimization):
    refused(levered("optimizations", "show", "ffffffff"), 4, "no optimization has an ID starting with 'ffffffff'")


@pytest.mark.parametrize("args,kind", [
    (("optimizations", "show", "869"), "optimization"),
    (("optimizations", "archive", "86", "-y"), "optimization"),
    (("models", "state", "ab1"), "model"),
    (("metrics", "preview", "7"), "metric"),
])
def test_ids_shorter_than_4_characters_are_refused_locally(levered, server, live_optimization, args, kind):
    before = server.state()
    refused(levered(*args), 2, f"{kind} ID {args[2]!r} is too short: give at least 4 characters of the ID "
                               "(or the full UUID)")
    assert server.state() == before


def test_invalid_status_lists_the_valid_ones(levered, server, live_optimization):
    before = server.state()
    run = levered("optimizations", "update", live_optimization["id"], "--status", "paused")
    assert run.exit_code == 2
    assert "invalid choice: 'paused' (choose from live, completed, archived)" in run.stderr \
        or "(choose from 'live', 'completed', 'archived')" in run.stderr
    assert server.state() == before


def test_out_of_range_page_size_is_refused_locally(levered, live_optimization):
    run = levered("optimizations", "observations", live_optimization["id"], "--size", "101")
    assert run.exit_code == 2 and "101 is outside 1-100" in run.stderr


def test_destructive_commands_refuse_without_a_terminal(levered, server, live_optimization, metric_id):
    before = server.state()
    for args in (("optimizations", "archive", live_optimization["id"]),
                 ("models", "delete", live_optimization["model_id"]),
                 ("metrics", "delete", metric_id)):
        refused(levered(*args), 2, "pass -y")
    assert server.state() == before


def test_metric_in_use_is_not_deleted_and_names_the_optimization(levered, server, live_optimization, metric_id):
    before = server.state()
    refused(levered("metrics", "delete", metric_id, "-y"), 1, "metric_in_use", "Hero")
    assert server.state() == before


def test_a_server_that_is_down_names_the_url(levered):
    run = levered("optimizations", "list", env={"LEVERED_API_URL": "http://127.0.0.1:9"})
    refused(run, 1, "cannot reach http://127.0.0.1:9")


def test_a_bad_api_key_is_not_authenticated(levered):
    run = levered("optimizations", "list", env={"LEVERED_API_KEY": "lvk_" + "x" * 43})
    assert run.exit_code == 3 and "Not authenticated" in run.stderr


def test_bad_context_json_names_the_flag(levered, live_optimization):
    refused(levered("serve", live_optimization["id"], "--context", "[1]"), 2,
            "--context must be a JSON object, got an array")
