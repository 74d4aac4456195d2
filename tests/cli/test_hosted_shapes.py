"""Every command against a server that sends only what the hosted API documents (tests/hosted_api.py).

Documented endpoints answer with the documented fields alone; the rest answer 404 (``absent``)
or ``{"meta": …}`` (``bare``). Each command runs in human mode and with ``--json``: it exits as
it should, never with a traceback or an "unexpected" error, shows ``-`` for what is missing,
and ``--json`` prints exactly what the server sent.
"""

from __future__ import annotations

import json

import pytest

from tests.hosted_api import (
    BARE,
    DELETED,
    FACTORS,
    FLAT,
    KEY,
    METRIC,
    METRIC_CREATED,
    METRIC_SQL,
    METRICS,
    MID,
    MODELS,
    NESTED,
    NOT_FOUND,
    OID,
    OPTIMIZATIONS,
    SERVED,
    TRAINED,
    hosted_api,
    run_many,
)

API_KEY = "lvk_" + "k" * 43
CREATE_OPTIMIZATION = ("optimizations", "create", "--name", "Landing Page Hero", "--design-factors", json.dumps(FACTORS),
                       "--reward-metric-id", METRIC, "--context-factors", '[{"name": "country"}, {"name": "device_type"}]')
CREATE_METRIC = ("metrics", "create", "--name", "Sign-ups (7d)", "--sql", METRIC_SQL, "--anonymous-id-col",
                 "anonymous_id", "--timestamp-col", "signed_up_at")

#: Commands whose requests are all documented: argv, the body --json prints, what people must see.
DOCUMENTED = {
    "optimizations list": (("optimizations", "list"), OPTIMIZATIONS, [
        "| 699ede80 | Landing Page Hero | live      | -    | trained   | +8.2% | 91%        |      4100 |",
        "| 7a1b2c3d | Pricing page      | completed | -    | untrained | -     | -          |         - |"]),
    "optimizations show": (("optimizations", "show", OID), NESTED, [
        "Landing Page Hero  (699ede80-c94b-4f98-9c79-dd3e07748703)", "Model        cmab model trained (4754cae0)",
        f"Metric       {METRIC}", "Attribution  conversion window 24", "Design factors (* = baseline)",
        "  cta_text  Get started* | Try it free", "  device_type  (any)", "Summary: lift +8.2%, confidence 91.0%"]),
    "optimizations create": (CREATE_OPTIMIZATION, NESTED, [
        "Holdout      10% of users see the baseline", "Serve it: levered serve 699ede80"]),
    "serve": (("serve", OID, "--anonymous-id", "user-42"), SERVED, [
        "Variant     headline=Build better, cta_text=Get started", "User        user-42", "Holdout     -",
        "Propensity  -  (model version -)", "Exposure    -"]),
    "models list": (("models", "list"), MODELS, [
        "| 4754cae0 | -            | cmab | trained | -       | -       | -        |"]),
    "models train": (("models", "train", MID), TRAINED, [
        f"Model {MID}: trained, version -, - observations; expected reward 0.27 [0.25, 0.29]"]),
    "models delete": (("models", "delete", MID, "-y"), DELETED, [f"Deleted model {MID}"]),
    "metrics list": (("metrics", "list"), METRICS, ["| 8a3b12c4 | Sign-ups (7d) | -    | anonymous_id | signed_up_at | -  "]),
    "metrics create": (CREATE_METRIC, METRIC_CREATED, [f"Created metric Sign-ups (7d) ({METRIC}), - reward"]),
}

#: Commands that need an endpoint the hosted documentation does not describe: argv, what people see
#: when the endpoint answers with nothing but ``meta``.
UNDOCUMENTED = {
    "optimizations update": (("optimizations", "update", OID, "--status", "completed"), [f"- ({OID}) is -"]),
    "optimizations archive": (("optimizations", "archive", OID, "-y"), [f"Archived - ({OID})"]),
    "optimizations results": (("optimizations", "results", OID), [
        "Results of - (-; model version -, trained -)", "Measured     -", "Lift (now)   -"]),
    "optimizations observations": (("optimizations", "observations", OID), ["(none)"]),
    "models state": (("models", "state", MID), ["Model         - (-, -)", "Optimization  -", "Version       -"]),
    "models create": (("models", "create", OID), ["Created model - (-, untrained)"]),
    "optimizations progress": (("optimizations", "progress", OID), ["Progress of - (-)", "Exposures      - (- users; "
                                                                     "holdout - exposures, - users)"]),
    "optimizations lift-history": (("optimizations", "lift-history", OID), [
        "No lift history for - yet: a point is kept per day a training run publishes."]),
    "optimizations guardrails": (("optimizations", "guardrails", OID), [
        "Guardrails of - (-; auto-stop off; test -, alpha -)"]),
    "optimizations report-data": (("optimizations", "report-data", OID), ['  "meta": {']),
    "metrics usage": (("metrics", "usage", METRIC), ["(none)"]),
    "metrics preview": (("metrics", "preview", METRIC), ["(none)"]),
    "metrics delete": (("metrics", "delete", METRIC, "-y"), [f"Deleted metric {METRIC}"]),
    "warehouse status": (("warehouse", "status"), ["Provider   -", "Status     -"]),
    "warehouse tables": (("warehouse", "tables"), ["(none)"]),
    "warehouse columns": (("warehouse", "columns", "events"), ["(none)"]),
    "warehouse preview": (("warehouse", "preview", "events"), ["(none)"]),
    "warehouse query": (("warehouse", "query", "SELECT 1"), ["(none)"]),
    "whoami": (("whoami",), ["Organization  - (-)"]),
    "auth api-keys list": (("auth", "api-keys", "list"), ["(none)"]),
    "auth api-keys create": (("auth", "api-keys", "create", "--name", "ci"), ["-"]),
    "auth api-keys revoke": (("auth", "api-keys", "revoke", KEY, "-y"), [f"Revoked API key {KEY}"]),
}

#: Commands that send no request (or none that matters here).
LOCAL = [("config", "list"), ("config", "get", "timeout"), ("config", "set", "timeout", "30"), ("logout",)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run every command once per server kind and output mode; map (kind, argv) to its CliRun."""
    commands = [argv for argv, _, _ in DOCUMENTED.values()] + [argv for argv, _ in UNDOCUMENTED.values()] + LOCAL
    commands += [("dashboard", "--once"), ("dashboard", "--once", OID), ("login", "--no-browser")]
    results = {}
    for kind in ("absent", "bare"):
        with hosted_api(kind) as api:
            env = {"LEVERED_API_URL": api.url, "LEVERED_API_KEY": API_KEY, "COLUMNS": "100",  # the dashboard's width
                   "LEVERED_HOME": str(tmp_path_factory.mktemp(f"home-{kind}"))}
            lines = [argv for argv in commands] + [(*argv, "--json") for argv in commands if argv[0] != "dashboard"]
            results.update({(kind, run.args): run for run in run_many(lines, env)})
    return results


def assert_clean(run):
    assert "Traceback" not in run.stdout + run.stderr, run.stderr
    assert "unexpected" not in run.stderr and "please report" not in run.stderr, run.stderr


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_commands_read_the_documented_shapes(runs, name):
    argv, body, shown = DOCUMENTED[name]
    for kind in ("absent", "bare"):
        human, machine = runs[kind, argv], runs[kind, (*argv, "--json")]
        for run in (human, machine):
            assert_clean(run)
            assert run.exit_code == 0, (kind, run.stderr)
        for fragment in shown:
            assert fragment in human.stdout, (kind, human.stdout)
        assert machine.json == body


@pytest.mark.parametrize("name", sorted(UNDOCUMENTED))
def test_an_undocumented_endpoint_that_is_absent_is_a_404_saying_so(runs, name):
    argv, _ = UNDOCUMENTED[name]
    for run in (runs["absent", argv], runs["absent", (*argv, "--json")]):
        assert_clean(run)
        assert run.exit_code == 4, run.stderr
        assert run.stderr.strip().endswith("this server may not offer this operation (it is not in the hosted "
                                           "Levered API's documentation) (not_found)"), run.stderr
    assert runs["absent", (*argv, "--json")].json == NOT_FOUND


@pytest.mark.parametrize("name", sorted(UNDOCUMENTED))
def test_an_undocumented_endpoint_that_sends_only_meta_shows_dashes(runs, name):
    argv, shown = UNDOCUMENTED[name]
    human, machine = runs["bare", argv], runs["bare", (*argv, "--json")]
    for run in (human, machine):
        assert_clean(run)
        assert run.exit_code == 0, run.stderr
    for line in shown:
        assert line in human.stdout.splitlines(), human.stdout
    assert machine.json == BARE


def test_local_commands_and_logout_need_no_server_fields(runs):
    for kind in ("absent", "bare"):
        for argv in LOCAL:
            for run in (runs[kind, argv], runs[kind, (*argv, "--json")]):
                assert_clean(run)
                assert run.exit_code == 0, run.stderr
            assert isinstance(runs[kind, (*argv, "--json")].json, dict)


def test_login_against_a_server_without_our_oauth_says_to_use_an_api_key(runs):
    for run in (runs["absent", ("login", "--no-browser")], runs["absent", ("login", "--no-browser", "--json")]):
        assert_clean(run)
        assert run.exit_code != 0 and "LEVERED_API_KEY" in run.stderr


def test_dashboard_once_shows_the_list_and_what_it_cannot_fetch(runs):
    for kind in ("absent", "bare"):
        listing, detail = runs[kind, ("dashboard", "--once")], runs[kind, ("dashboard", "--once", OID)]
        for run in (listing, detail):
            assert_clean(run)
            assert run.exit_code == 0, run.stderr
        row = next(line for line in listing.stdout.splitlines() if line.startswith("Landing Page Hero"))
        assert row.split()[3:8] == ["live", "10", "4100", "-", "+8%"], row  # variants from the summary
        assert "Landing Page Hero · live · - · 699ede80 · holdout -" in detail.stdout
    assert "not available: Not found; this server may not offer this operation" in \
        runs["absent", ("dashboard", "--once", OID)].stdout


def test_show_reads_the_flat_shape_too(tmp_path):
    with hosted_api() as api:
        api.routes["GET", f"/api/v2/optimizations/{OID}"] = [(200, FLAT, {})]
        env = {"LEVERED_API_URL": api.url, "LEVERED_API_KEY": API_KEY, "LEVERED_HOME": str(tmp_path)}
        human, machine = run_many([("optimizations", "show", OID), ("optimizations", "show", OID, "--json")], env)
    assert_clean(human)
    assert human.exit_code == machine.exit_code == 0
    lines = human.stdout.splitlines()
    for line in ("Reward       -", "Attribution  -", "Design factors (* = baseline)", "Summary: not trained yet"):
        assert line in lines, human.stdout
    assert machine.json == FLAT
