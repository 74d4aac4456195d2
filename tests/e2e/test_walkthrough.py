"""The README's main job end to end: metric → optimization → serve → rewards → train → results → archive."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

FACTORS = json.dumps([{"name": "headline", "levels": ["Ship faster", "Build better", "Scale up"]},
                      {"name": "cta_text", "levels": ["Get started", "Try it free"]}])
CONTEXT = json.dumps([{"name": "country", "levels": ["US", "DE"]}, {"name": "device_type"}])
SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup' AND timestamp_utc >= @start_date"


@pytest.fixture(scope="module")
def walk(server):
    """Shared IDs of the walk-through, filled in order by the tests below."""
    return {}


def ok(run):
    assert run.exit_code == 0, f"exit {run.exit_code}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    return run


def test_1_create_a_metric(levered, walk):
    created = ok(levered("metrics", "create", "--name", "Sign-ups", "--sql", SQL, "--anonymous-id-col",
                         "anonymous_id", "--timestamp-col", "timestamp_utc", "--json")).json
    assert created["column_mapping"] == {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc",
                                         "value": None, "reward_type": "bool"}
    walk["metric"] = created["id"]
    table = ok(levered("metrics", "list")).stdout
    assert created["id"][:8] in table and "Sign-ups" in table


def test_2_create_an_optimization_with_a_metric_prefix(levered, walk):
    run = ok(levered("optimizations", "create", "--name", "Landing Page Hero", "--design-factors", FACTORS,
                     "--reward-metric-id", walk["metric"][:8], "--context-factors", CONTEXT,
                     "--excluded-combinations", '[{"headline": "Scale up", "cta_text": "Try it free"}]',
                     "--holdout-percentage", "10", "--json"))
    body = run.json
    assert body["status"] == "live" and body["variants_count"] == 5 and body["model_status"] == "untrained"
    assert body["reward_metric_id"] == walk["metric"]
    assert body["meta"]["request_id"].startswith("req_")
    walk["opt"], walk["model"] = body["id"], body["model_id"]


def test_2b_create_and_archive_for_people(levered, walk):
    run = ok(levered("optimizations", "create", "--name", "Pricing Page", "--design-factors", FACTORS,
                     "--reward-metric-id", walk["metric"]))
    first = run.stdout.splitlines()[0]
    match = re.fullmatch(r"Pricing Page  \(([0-9a-f-]{36})\)", first)
    assert match, run.stdout
    walk["other"] = match[1]
    assert f"Metric       Sign-ups ({walk['metric'][:8]})" in run.stdout and walk["metric"] not in run.stdout
    assert "Status       live" in run.stdout and "Summary: not trained yet" in run.stdout
    assert run.stdout.endswith(f"\n\nServe it: levered serve {walk['other'][:8]}\n")
    archived = ok(levered("optimizations", "archive", walk["other"][:8], "-y"))
    assert archived.stdout == f"Archived Pricing Page ({walk['other']})\n"


def test_3_list_and_show_for_people_and_programs(levered, walk, server):
    table = ok(levered("optimizations", "list")).stdout
    assert re.search(rf"\| {walk['opt'][:8]} +\| Landing Page Hero +\| live", table), table
    shown = ok(levered("optimizations", "show", walk["opt"][:6])).stdout
    assert "Ship faster* | Build better | Scale up" in shown
    assert "Metric       Sign-ups" in shown and "headline=Scale up, cta_text=Try it free" in shown
    as_json = ok(levered("optimizations", "show", walk["opt"], "--json")).json
    status, direct = server.api("GET", f"/api/v2/optimizations/{walk['opt']}")
    as_json.pop("meta"), direct.pop("meta")
    assert as_json == direct
    listed = ok(levered("optimizations", "list", "--json")).json["optimizations"]
    assert [o["id"] for o in listed] == [walk["opt"]]


def test_4_serve_is_sticky_and_reports_its_propensity(levered, walk):
    first = ok(levered("serve", walk["opt"][:8], "--anonymous-id", "user-1", "--context",
                       '{"country": "US"}', "--json")).json
    again = ok(levered("serve", walk["opt"], "--anonymous-id", "user-1", "--json")).json
    assert again["variant_number"] == first["variant_number"]
    assert 0 < first["propensity"] <= 1 and first["exposure_id"]
    text = ok(levered("serve", walk["opt"], "--dry-run")).stdout
    assert "(generated)" in text and "not recorded (dry run)" in text


def test_5_traffic_and_rewards_then_train(levered, walk, server):
    served = [ok(levered("serve", walk["opt"], "--anonymous-id", f"u{i}", "--json")).json for i in range(3)]
    for i in range(40):  # more traffic through the API, cheaper than 40 processes
        status, body = server.api("POST", f"/api/v2/optimizations/{walk['opt']}/serve", {"anonymous_id": f"w{i}"})
        assert status == 200, body
        served.append(body)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    events = [{"anonymous_id": s["anonymous_id"], "name": "signup", "timestamp": now} for s in served[::3]]
    status, body = server.api("POST", "/api/v2/ingest/rewards", {"events": events})
    assert status == 200 and body["accepted"] == len(events), body
    trained = ok(levered("models", "train", walk["model"][:8], "--json")).json
    assert trained["model_id"] == walk["model"] and trained["observations"] >= 40
    again = ok(levered("models", "train", walk["model"][:8])).stdout
    assert re.fullmatch(rf"Model {walk['model']}: trained, version {trained['version'] + 1}, \d+ observations; "
                        r"expected reward [\d.]+ \[[\d.]+, [\d.]+\]\n", again), again
    state = ok(levered("models", "state", walk["model"])).stdout
    assert "P(BEST)" in state and "TRAFFIC" in state and "WEIGHT" not in state


def test_6_results_and_observations(levered, walk):
    text = ok(levered("optimizations", "results", walk["opt"][:8])).stdout
    assert "Lift (best)" in text and "Variants" in text and "Factor importance" in text
    body = ok(levered("optimizations", "results", walk["opt"], "--json")).json
    assert len(body["variants"]) == 5 and sum(v["exposures"] for v in body["variants"]) >= 40
    page = ok(levered("optimizations", "observations", walk["opt"], "--size", "5", "--json")).json
    assert page["size"] == 5 and len(page["observations"]) == 5 and page["total"] >= 40
    assert ok(levered("optimizations", "observations", walk["opt"], "--size", "5", "--json")).stderr == ""
    run = ok(levered("optimizations", "observations", walk["opt"], "--size", "3"))
    assert run.stdout.count("\n| ") == 4  # header and three rows
    assert "| Exposed " in run.stdout and re.search(r"^\| (just now|\d+m ago) +\| ", run.stdout.splitlines()[3])
    pages = -(-page["total"] // 3)
    assert run.stderr == f"page 1 of {pages} ({page['total']} observations); next: --page 2\n"
    last = ok(levered("optimizations", "observations", walk["opt"], "--size", "3", "--page", str(pages)))
    assert last.stderr == f"page {pages} of {pages} ({page['total']} observations)\n"


def test_7_status_transitions(levered, walk):
    assert "is completed" in ok(levered("optimizations", "update", walk["opt"][:8], "--status", "completed")).stdout
    winner = ok(levered("optimizations", "show", walk["opt"], "--json")).json["winner"]
    assert winner is not None and winner["variant_number"] >= 1
    assert "is live" in ok(levered("optimizations", "update", walk["opt"], "--status", "live")).stdout


def test_8_archive_asks_first_and_hides_the_optimization(levered, walk, server):
    before = server.state()
    refused = levered("optimizations", "archive", walk["opt"])
    assert refused.exit_code == 2 and "pass -y" in refused.stderr
    assert server.state() == before
    archived = ok(levered("optimizations", "archive", walk["opt"][:8], "-y", "--json")).json
    assert archived["status"] == "archived"
    assert ok(levered("optimizations", "list", "--json")).json["optimizations"] == []
    listed = ok(levered("optimizations", "list", "--include-archived", "--json")).json["optimizations"]
    assert sorted((o["id"], o["status"]) for o in listed) == sorted([(walk["opt"], "archived"),
                                                                    (walk["other"], "archived")])
