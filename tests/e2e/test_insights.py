"""The commands beyond the reference against a real server: guardrails with auto-stop, progress,
lift history, report data, metric usage, and `levered env`."""

from __future__ import annotations

import csv
import datetime as dt
import json
import time

import pytest

from tests.e2e.test_bad_input import refused

FACTORS = json.dumps([{"name": "headline", "levels": ["A", "B"]}])
SIGNUP = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup'"
RETAINED = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'retained'"
UNKNOWN = "5b0c7f0e-0000-4000-8000-000000000000"


def _metric(server, name: str, sql: str) -> str:
    status, body = server.api("POST", "/api/v2/warehouse/metrics", {
        "name": name, "sql": sql, "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
    assert status == 201, body
    return str(body["id"])


@pytest.fixture(scope="module")
def metrics(server):
    return _metric(server, "Sign-ups", SIGNUP), _metric(server, "Retained", RETAINED)


def _create(levered, reward: str, *extra: str):
    run = levered("optimizations", "create", "--name", "Guarded", "--reward-metric-id", reward[:8],
                  "--design-factors", FACTORS, "--model-type", "mab", "--json", *extra)
    assert run.exit_code == 0, run.stderr
    return run.json


def _seed(server, opt_id: str, optimized: int = 300, held: int = 150) -> None:
    """Optimized users (variant B) are rarely retained; holdout users (A) half the time."""
    time.sleep(0.6)  # every exposure lies after the optimization's creation
    base = dt.datetime.now(dt.UTC)
    exposures, rewards = [], []
    for arm, n, retained, level in (("o", optimized, 0.1, "B"), ("h", held, 0.5, "A")):
        for i in range(n):
            anon = f"{opt_id[:8]}-{arm}{i}"
            ts = (base - dt.timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            exposures.append({"anonymous_id": anon, "optimization_id": opt_id, "variant": {"headline": level},
                              "timestamp": ts, "in_holdout": arm == "h"})
            if i < n * retained:
                rewards.append({"anonymous_id": anon, "name": "retained", "timestamp": ts})
            if i % 3 == 0:
                rewards.append({"anonymous_id": anon, "name": "signup", "timestamp": ts})
    for kind, events in (("exposures", exposures), ("rewards", rewards)):
        for start in range(0, len(events), 500):
            status, body = server.api("POST", f"/api/v2/ingest/{kind}", {"events": events[start:start + 500]})
            assert status == 200, body


def test_guardrail_violation_stops_the_optimization_and_every_view_says_so(levered, server, metrics, tmp_path):
    reward, retained = metrics
    created = _create(levered, reward, "--guardrail", f"{retained[:8]}:higher:0.02", "--auto-stop")
    opt_id = created["id"]
    shown = levered("optimizations", "show", opt_id[:8])
    assert "Guardrails (auto-stop on)" in shown.stdout and "Retained: higher is better, tolerance 2.0%" in shown.stdout
    _seed(server, opt_id)

    run = levered("optimizations", "guardrails", opt_id[:8])
    assert run.exit_code == 0, run.stderr
    assert "Retained  [VIOLATED]" in run.stdout and "Stopped " in run.stdout
    body = levered("optimizations", "guardrails", opt_id, "--json").json
    assert body["status"] == "completed" and body["stop_reason"]["metric_id"] == retained
    assert body["guardrails"][0]["holdout"]["users"] == 150
    assert "Stopped " in levered("optimizations", "show", opt_id).stdout
    results = levered("optimizations", "results", opt_id, "--debug")
    assert results.exit_code == 0 and results.stdout.startswith("Stopped "), results.stderr

    usage = levered("metrics", "usage", retained[:8], "--json").json
    assert [o["id"] for o in usage["guardrail_of"]] == [opt_id]
    table = levered("metrics", "usage", retained[:8])
    assert "guardrail" in table.stdout and "higher is better, tolerance 2%" in table.stdout

    status, _ = server.api("POST", f"/api/v2/models/{created['model_id']}/train")
    assert status == 200
    history = levered("optimizations", "lift-history", opt_id)
    assert history.exit_code == 0 and "Lift history of" in history.stdout and "Policy lift" in history.stdout
    assert len(levered("optimizations", "lift-history", opt_id, "--json").json["points"]) == 1

    progress = levered("optimizations", "progress", opt_id)
    assert progress.exit_code == 0 and "Exposures      450 (450 users; holdout 150 exposures" in progress.stdout
    assert levered("optimizations", "progress", opt_id, "--json").json["holdout"]["users"] == 150

    pack = levered("optimizations", "report-data", opt_id, "--json").json
    assert pack["format"] == "levered-report-data/1" and len(pack["lift_history"]) == 1
    text = levered("optimizations", "report-data", opt_id)
    assert json.loads(text.stdout)["format"] == "levered-report-data/1"
    out = tmp_path / "pack"
    run = levered("optimizations", "report-data", opt_id, "--format", "csv", "--out", str(out))
    assert run.exit_code == 0, run.stderr
    names = {p.name for p in out.iterdir()}
    assert names == {"optimization.csv", "variants.csv", "daily.csv", "state_variants.csv", "guardrails.csv",
                     "lift_history.csv"}
    with (out / "daily.csv").open() as f:
        daily = list(csv.DictReader(f))
    assert sum(int(r["exposures"]) for r in daily if r["arm"] == "holdout") == 150


def test_update_sets_and_clears_guardrails(levered, metrics):
    reward, retained = metrics
    opt_id = _create(levered, reward)["id"]
    run = levered("optimizations", "update", opt_id, "--guardrail-metric-ids", retained, "--auto-stop")
    assert run.exit_code == 0, run.stderr
    assert "Retained: higher is better, tolerance 0.0%" in run.stdout and "auto-stop on" in run.stdout
    run = levered("optimizations", "update", opt_id, "--clear-guardrails", "--no-auto-stop")
    assert run.exit_code == 0 and "Guardrails   none (auto-stop off)" in run.stdout


@pytest.mark.parametrize("flags,code,fragment", [
    (("--guardrail", "{reward}"), 1, "the reward metric cannot be its own guardrail"),
    (("--guardrail", UNKNOWN), 1, "guardrails[0].metric_id"),
    (("--guardrail", "{retained}", "--guardrail-metric-ids", "{retained}"), 1, "already a guardrail"),
    (("--guardrail", "{retained}:sideways"), 2, "the direction is higher or lower"),
    (("--guardrail", "{retained}:higher:2"), 2, "the tolerance is a fraction"),
])
def test_bad_guardrails_are_refused_and_create_nothing(levered, server, metrics, flags, code, fragment):
    reward, retained = metrics
    before = server.state()
    args = [f.format(reward=reward, retained=retained) for f in flags]
    run = levered("optimizations", "create", "--name", "Bad", "--reward-metric-id", reward,
                  "--design-factors", FACTORS, *args)
    refused(run, code, fragment)
    assert server.state() == before


@pytest.mark.parametrize("command", ["progress", "lift-history", "guardrails", "report-data"])
def test_unknown_optimization_exits_4(levered, command):
    refused(levered("optimizations", command, "00000000-0000-4000-8000-000000000000"), 4, "not_found")


def test_report_data_csv_needs_a_directory(levered):
    refused(levered("optimizations", "report-data", "00000000-0000-4000-8000-000000000000", "--format", "csv"),
            2, "--format csv writes files: give --out DIR")


def test_env_shows_and_switches_like_config_set_environment(levered):
    assert "Environment  prod (from default)" in levered("env").stdout
    run = levered("env", "use", "testing", env={"LEVERED_API_URL": ""})
    assert run.exit_code == 0 and "https://api.testing.levered.dev" in run.stdout
    assert levered("config", "get", "environment").stdout.strip() == "testing"
    assert levered("env", "--json").json["environment"] == "testing"
    assert levered("env", "use", "bogus").exit_code == 2
    assert levered("config", "get", "environment").stdout.strip() == "testing"
