"""Extensions beyond the reference: guardrails (auto-stop), progress, lift history, report data,
metric usage (docs/api.md 6.9-6.12, 9.7), against the real app and warehouse."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from levered_server.engine.sequential import false_alarm_rate
from tests.server.conftest import assert_error, field_codes
from tests.server.factories import make_metric, make_optimization

SIGNUP_SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup_completed'"
RETAINED_SQL = "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'retained'"
V1 = {"headline": "Ship faster", "cta_text": "Get started"}
V3 = {"headline": "Build better", "cta_text": "Get started"}


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seed(org, opt, *, optimized: int = 300, held: int = 150, retained_optimized: float = 0.1,
         retained_held: float = 0.5) -> None:
    """Exposures after the optimization went live: the optimized users see #3 and convert
    well but are rarely retained; the holdout sees #1 and is retained half the time."""
    time.sleep(0.6)  # every exposure below lies after the optimization's creation
    base = dt.datetime.now(dt.UTC)
    exposures, rewards = [], []
    for arm, n, retained, variant, signup in (("o", optimized, retained_optimized, V3, 0.5),
                                              ("h", held, retained_held, V1, 0.1)):
        for i in range(n):
            anon, ts = f"{arm}{i}", _iso(base - dt.timedelta(milliseconds=i))
            exposures.append({"anonymous_id": anon, "optimization_id": opt["id"],
                              "variant": variant, "timestamp": ts, "in_holdout": arm == "h",
                              "context": {"country": "US"}, "propensity": 0.5})
            if i < round(n * retained):
                rewards.append({"anonymous_id": anon, "name": "retained", "timestamp": ts})
            if i < round(n * signup):
                rewards.append({"anonymous_id": anon, "name": "signup_completed", "timestamp": ts})
    for kind, events in (("exposures", exposures), ("rewards", rewards)):
        for start in range(0, len(events), 500):
            resp = org.post(f"/api/v2/ingest/{kind}", json={"events": events[start:start + 500]})
            assert resp.status_code == 200, resp.text


@pytest.fixture
def guarded(org):
    reward = make_metric(org, name="Sign-ups", sql=SIGNUP_SQL)
    retained = make_metric(org, name="Retained", sql=RETAINED_SQL)
    opt = make_optimization(org, reward["id"], model_type="mab", auto_stop=True, guardrails=[
        {"metric_id": retained["id"], "direction": "higher", "tolerance": 0.02}])
    return opt, reward, retained


def test_bad_guardrails_are_refused_and_nothing_is_created(org, other_org):
    reward = make_metric(org, name="Sign-ups", sql=SIGNUP_SQL)
    retained = make_metric(org, name="Retained", sql=RETAINED_SQL)
    foreign = make_metric(other_org, name="Theirs", sql=RETAINED_SQL)
    before = len(org.get("/api/v2/optimizations", params={"limit": 100}).json()["optimizations"])
    from tests.server.factories import hero

    bad = [{"metric_id": "5b0c7f0e-0000-4000-8000-000000000000"},
           {"metric_id": foreign["id"]}, {"metric_id": reward["id"]},
           {"metric_id": retained["id"]}, {"metric_id": retained["id"], "direction": "lower"}]
    resp = org.post("/api/v2/optimizations", json=hero(reward["id"], guardrails=bad))
    codes = field_codes(resp)
    assert codes == {"guardrails[0].metric_id": "not_found", "guardrails[1].metric_id": "not_found",
                     "guardrails[2].metric_id": "is_reward_metric",
                     "guardrails[4].metric_id": "duplicate"}
    assert "Theirs" not in resp.text  # another organization's metric is just "not found"
    resp = org.post("/api/v2/optimizations", json=hero(reward["id"], holdout_percentage=0,
                                                       guardrails=[{"metric_id": retained["id"]}]))
    assert field_codes(resp) == {"guardrails": "needs_holdout"}
    resp = org.post("/api/v2/optimizations", json=hero(reward["id"], guardrails=[
        {"metric_id": retained["id"], "tolerance": 1.5, "direction": "up"}]))
    assert set(field_codes(resp)) == {"guardrails[0].tolerance", "guardrails[0].direction"}
    after = len(org.get("/api/v2/optimizations", params={"limit": 100}).json()["optimizations"])
    assert after == before


def test_update_replaces_guardrails_and_refuses_bad_ones_changing_nothing(org, guarded):
    opt, reward, retained = guarded
    url = f"/api/v2/optimizations/{opt['id']}"
    resp = org.patch(url, json={"guardrails": [{"metric_id": reward["id"]}]})
    assert field_codes(resp) == {"guardrails[0].metric_id": "is_reward_metric"}
    body = org.get(url + "/guardrails", params={"evaluate": "false"}).json()
    assert [g["metric_id"] for g in body["guardrails"]] == [retained["id"]]
    assert body["auto_stop"] is True and body["guardrails"][0]["status"] is None
    assert org.patch(url, json={"auto_stop": False, "guardrails": []}).status_code == 200
    body = org.get(url + "/guardrails").json()
    assert body["guardrails"] == [] and body["auto_stop"] is False


def test_a_violated_guardrail_stops_the_optimization_and_says_why(org, guarded, server):
    opt, reward, retained = guarded
    seed(org, opt)
    body = org.get(f"/api/v2/optimizations/{opt['id']}/guardrails").json()
    g = body["guardrails"][0]
    assert g["status"] == "violated" and g["p_value"] < 0.05, g
    assert (g["holdout"]["users"], g["optimized"]["users"]) == (150, 300)
    assert g["lift_percent"] == pytest.approx(-80.0)
    assert g["lift_ci"][1] < 0 and g["window"]["conversion_window_hours"] == 24
    assert body["status"] == "completed" and body["stop_reason"]["metric_id"] == retained["id"]
    assert body["stop_reason"]["reason"] == "guardrail_violated"
    shown = org.get(f"/api/v2/optimizations/{opt['id']}").json()
    assert shown["status"] == "completed" and shown["winner"]["variant_number"] == 1
    served = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                                json={"anonymous_id": "after-stop"}).json()
    assert served["variant_number"] == 1
    # A person restarting it clears the recorded stop.
    org.patch(f"/api/v2/optimizations/{opt['id']}", json={"status": "live", "auto_stop": False})
    assert org.get(f"/api/v2/optimizations/{opt['id']}/guardrails",
                   params={"evaluate": "false"}).json()["stop_reason"] is None


def test_a_harmless_guardrail_is_ok_and_nothing_stops(org, guarded):
    opt, _reward, _retained = guarded
    seed(org, opt, retained_optimized=0.5, retained_held=0.5)
    body = org.get(f"/api/v2/optimizations/{opt['id']}/guardrails").json()
    assert body["guardrails"][0]["status"] == "ok" and body["status"] == "live"
    assert body["stop_reason"] is None


def test_guardrails_are_pending_without_enough_users(org, guarded):
    opt, _reward, _retained = guarded
    seed(org, opt, optimized=50, held=20)
    g = org.get(f"/api/v2/optimizations/{opt['id']}/guardrails").json()["guardrails"][0]
    assert g["status"] == "pending" and g["p_value"] is None


def test_training_keeps_a_daily_lift_history_and_progress_reports_traffic(org, guarded):
    opt, _reward, _retained = guarded
    org.patch(f"/api/v2/optimizations/{opt['id']}", json={"auto_stop": False})
    url = f"/api/v2/optimizations/{opt['id']}"
    assert org.get(url + "/lift-history").json()["points"] == []
    seed(org, opt)
    for _ in range(2):
        assert org.post(f"/api/v2/models/{opt['model_id']}/train").status_code == 200
    points = org.get(url + "/lift-history").json()["points"]
    assert len(points) == 1 and points[0]["model_version"] == 2  # the day's last run
    assert points[0]["date"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert points[0]["observations"] == 450
    p = org.get(url + "/progress").json()
    assert p["exposures"] == 450 and p["users"] == 450 and p["holdout"] == {"exposures": 150,
                                                                          "users": 150}
    by_number = {v["number"]: v for v in p["variants"]}
    assert by_number[3]["exposures"] == 300 and by_number[3]["traffic_share"] == 1.0
    best = max(p["variants"], key=lambda v: v["prob_best"])
    assert p["current_best"]["number"] == best["number"]
    assert p["best_traffic_share"] == best["traffic_share"]
    assert 0 <= p["estimated_progress"] <= 1 and p["days_running"] >= 0
    assert p["model_version"] == 2


def test_report_data_packs_design_daily_counts_state_guardrails_history(org, guarded):
    opt, reward, _retained = guarded
    org.patch(f"/api/v2/optimizations/{opt['id']}", json={"auto_stop": False})
    seed(org, opt)
    org.post(f"/api/v2/models/{opt['model_id']}/train")
    body = org.get(f"/api/v2/optimizations/{opt['id']}/report-data").json()
    assert body["format"] == "levered-report-data/1"
    assert body["reward_metric"]["id"] == reward["id"]
    assert sum(d["exposures"] for d in body["daily"] if d["arm"] == "holdout") == 150
    assert sum(d["conversions"] for d in body["daily"] if d["arm"] == "optimized") == 150
    assert body["state"]["model_version"] == 1 and len(body["lift_history"]) == 1
    assert body["guardrails"]["guardrails"][0]["status"] == "violated"


def test_metric_usage_names_reward_and_guardrail_uses(org, other_org, guarded):
    opt, reward, retained = guarded
    body = org.get(f"/api/v2/warehouse/metrics/{retained['id']}/usage").json()
    assert body["reward_of"] == [] and body["guardrail_of"][0]["id"] == opt["id"]
    assert body["guardrail_of"][0]["tolerance"] == 0.02
    body = org.get(f"/api/v2/warehouse/metrics/{reward['id']}/usage").json()
    assert [o["id"] for o in body["reward_of"]] == [opt["id"]] and body["guardrail_of"] == []
    assert_error(other_org.get(f"/api/v2/warehouse/metrics/{retained['id']}/usage"), 404,
                 "not_found")


@pytest.mark.parametrize("tail", ["progress", "lift-history", "guardrails", "report-data"])
def test_unknown_and_foreign_optimizations_are_not_found(org, other_org, tail):
    opt = make_optimization(org)
    assert_error(org.get(f"/api/v2/optimizations/5b0c7f0e-0000-4000-8000-000000000000/{tail}"),
                 404, "not_found")
    assert_error(other_org.get(f"/api/v2/optimizations/{opt['id']}/{tail}"), 404, "not_found")


def test_msprt_false_alarm_rate_under_continuous_monitoring_stays_below_alpha():
    # A/A at the tolerance's boundary, looked at after each of 50 batches (docs/api.md 6.11).
    msprt, naive = false_alarm_rate(runs=400, looks=50, users_per_look=400, rate=0.1,
                                    alpha=0.05, tolerance=0.02, seed=11)
    assert msprt <= 0.05 + 0.02  # binomial noise of 400 runs
    assert naive > 0.1  # peeking at a fixed-horizon test inflates false alarms


def test_a_guardrail_metric_of_a_live_optimization_cannot_be_deleted(org, guarded):
    opt, _reward, retained = guarded
    if org.get(f"/api/v2/optimizations/{opt['id']}").json()["status"] != "live":
        assert org.patch(f"/api/v2/optimizations/{opt['id']}",
                         json={"status": "live"}).status_code == 200
    error = assert_error(org.delete(f"/api/v2/warehouse/metrics/{retained['id']}"), 409,
                         "metric_in_use")
    assert "guardrail" in error["message"]
    assert [o["id"] for o in error["details"]["optimizations"]] == [opt["id"]]
    assert org.get(f"/api/v2/warehouse/metrics/{retained['id']}").status_code == 200
