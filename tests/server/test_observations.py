"""docs/api.md 2.5 and 6.7: last-touch attribution pushed down to the warehouse, pagination."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.server.conftest import assert_error
from tests.server.factories import hero, make_metric, make_optimization

V = {"headline": "Build better", "cta_text": "Get started"}
PINNED_SQL = ("SELECT anonymous_id, timestamp_utc, optimization_id FROM rewards "
              "WHERE name = 'signup_completed'")


def _ts(hours: float) -> str:
    t = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC) + dt.timedelta(hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _exp(opt, anon, hours, key):
    return {"anonymous_id": anon, "optimization_id": opt["id"], "variant": V,
            "timestamp": _ts(hours) if isinstance(hours, (int, float)) else hours,
            "idempotency_key": key}


def _reward(anon, hours, name="signup_completed", **kw):
    return {"anonymous_id": anon, "name": name, "timestamp": _ts(hours), **kw}


@pytest.fixture
def scenario(org):
    metric = make_metric(org, sql=PINNED_SQL)
    opt = make_optimization(org, metric["id"])
    other = make_optimization(org, metric["id"], name="other")
    recent = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    exposures = [_exp(opt, "a", 0, "a1"), _exp(opt, "a", 2, "a2"), _exp(opt, "b", 0, "b1"),
                 _exp(opt, "c", 0, "c1"), _exp(opt, "d", 0, "d1"), _exp(opt, "e", recent, "e1"),
                 _exp(opt, "f", 0, "f1"), _exp(opt, "g", 0, "g1")]
    assert org.post("/api/v2/ingest/exposures", json={"events": exposures}).json()["accepted"] == 8
    rewards = [_reward("a", 3), _reward("b", 25), _reward("c", -1), _reward("d", 2),
               _reward("d", 1), _reward("a", 3, name="other_event"),
               _reward("f", 1, optimization_id=other["id"]),
               _reward("g", 1, optimization_id=opt["id"])]
    assert org.post("/api/v2/ingest/rewards", json={"events": rewards}).json()["accepted"] == 8
    return org, opt


def _all(org, opt):
    body = org.get(f"/api/v2/optimizations/{opt['id']}/observations",
                   params={"size": 100}).json()
    return body, {(o["anonymous_id"], o["exposed_at"]): o for o in body["observations"]}


def test_last_touch_attribution(scenario):
    org, opt = scenario
    body, obs = _all(org, opt)
    assert body["total"] == 8
    reward = {k: (v["reward"], v["rewarded_at"]) for k, v in obs.items()}
    assert reward[("a", _ts(0))] == (0, None)                 # superseded by the later exposure
    assert reward[("a", _ts(2))] == (1, _ts(3))               # latest exposure gets the credit
    assert reward[("b", _ts(0))] == (0, None)                 # reward after the 24 h window
    assert reward[("c", _ts(0))] == (0, None)                 # reward before the exposure
    assert reward[("d", _ts(0))] == (1, _ts(1))               # earliest credited reward
    assert reward[("f", _ts(0))] == (0, None)                 # pinned to another optimization
    assert reward[("g", _ts(0))] == (1, _ts(1))               # pinned to this one
    pending = [v for (anon, _), v in obs.items() if anon == "e"][0]
    assert pending["reward"] is None and pending["rewarded_at"] is None  # window still open


def test_order_and_pagination(scenario):
    org, opt = scenario
    url = f"/api/v2/optimizations/{opt['id']}/observations"
    full = org.get(url, params={"size": 100}).json()["observations"]
    stamps = [(o["exposed_at"], o["exposure_id"]) for o in full]
    assert stamps == sorted(stamps, reverse=True)
    p1 = org.get(url, params={"size": 3}).json()
    p3 = org.get(url, params={"size": 3, "page": 3}).json()
    assert (p1["page"], p1["size"], p1["total"]) == (1, 3, 8)
    assert [o["exposure_id"] for o in p1["observations"]] == [o["exposure_id"] for o in full[:3]]
    assert [o["exposure_id"] for o in p3["observations"]] == [o["exposure_id"] for o in full[6:]]
    assert org.get(url, params={"page": 99}).json()["observations"] == []
    for params in ({"page": 0}, {"size": 0}, {"size": 101}, {"page": "x"}):
        assert_error(org.get(url, params=params), 400, "bad_request")


def test_numeric_rewards_are_summed(org):
    metric = make_metric(org, name="rev", value="value",
                         sql="SELECT anonymous_id, timestamp_utc, value FROM rewards "
                             "WHERE name = 'purchase'")
    body = hero(metric["id"])
    body["training_data_config"]["reward"] = {"name": "revenue", "type": "numeric"}
    resp = org.post("/api/v2/optimizations", json=body)
    assert resp.status_code == 201, resp.text
    opt = resp.json()
    org.post("/api/v2/ingest/exposures", json={"events": [_exp(opt, "n", 0, "n1")]})
    org.post("/api/v2/ingest/rewards", json={"events": [
        _reward("n", 1, name="purchase", value=20.5), _reward("n", 2, name="purchase", value=4)]})
    obs = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()["observations"]
    assert obs[0]["reward"] == 24.5 and obs[0]["rewarded_at"] == _ts(1)
    train = org.post(f"/api/v2/models/{opt['model_id']}/train").json()
    assert train["observations"] == 1
    assert train["in_sample_metrics"]["historic_reward"] == 24.5


def test_start_date_is_the_optimization_creation(org):
    # The default metric filters `timestamp_utc >= @start_date`; rewards before the
    # optimization was created are not read.
    opt = make_optimization(org)
    org.post("/api/v2/ingest/exposures", json={"events": [_exp(opt, "s", 0, "s1")]})
    org.post("/api/v2/ingest/rewards", json={"events": [_reward("s", 1)]})
    obs = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()["observations"]
    assert obs[0]["reward"] == 0


def test_observations_of_unknown_optimization(org):
    assert_error(org.get("/api/v2/optimizations/699ede80-c94b-4f98-9c79-dd3e07748703/"
                         "observations"), 404, "not_found")


def test_results_counts_lift_and_series(scenario):
    org, opt = scenario
    body = org.get(f"/api/v2/optimizations/{opt['id']}/results").json()
    assert body["status"] == "live" and body["model_version"] == 0 and body["model_id"] is None
    assert body["reward_type"] == "bool" and body["conversion_window_hours"] == 24
    v3 = [v for v in body["variants"] if v["number"] == 3][0]
    assert (v3["exposures"], v3["conversions"], v3["reward_sum"]) == (8, 3, 3.0)
    assert v3["rate"] == 3 / 8 and v3["prob_best"] == 0.2 and v3["expected_reward_mean"] is None
    assert [v["exposures"] for v in body["variants"] if v["number"] != 3] == [0, 0, 0, 0]
    assert body["stats"]["best_vs_baseline_percent"] is None
    days = {d["date"]: d for d in body["time_series"]}
    assert days["2026-11-20"]["exposures"] == 7
    assert days["2026-11-21"]["exposures"] == 0  # zero days are included
    key = '{"cta_text":"Get started","headline":"Build better"}'
    assert days["2026-11-20"]["variants"][key] == {"exposures": 7, "conversions": 3}
    lift = body["primary_metric_vs_holdout"]
    # measured lift counts users whose first exposure was while live: every ingested
    # exposure predates the optimization's creation
    assert lift["metric_name"] == "Sign-ups (7d)"
    assert (lift["holdout_exposures"], lift["optimization_exposures"]) == (0, 0)
    assert lift["holdout_rate"] is None and body["srm"]["ok"] is None


def test_results_measured_lift_counts_live_users(org, server):
    from levered_server.services.design import in_holdout

    opt = make_optimization(org, holdout_percentage=50)
    users = [f"m{i}" for i in range(12)]
    for u in users:
        server.client.post(f"/api/v2/optimizations/{opt['id']}/serve", json={"anonymous_id": u})
    org.patch(f"/api/v2/optimizations/{opt['id']}", json={"status": "completed"})
    org.post(f"/api/v2/optimizations/{opt['id']}/serve", json={"anonymous_id": "late"})
    held = sum(in_holdout(opt["id"], u, 50) for u in users)
    lift = org.get(f"/api/v2/optimizations/{opt['id']}/results").json()
    pm = lift["primary_metric_vs_holdout"]
    assert (pm["holdout_exposures"], pm["optimization_exposures"]) == (held, 12 - held)
    assert lift["srm"]["observed"] == {"holdout": held, "optimized": 12 - held}
    assert sum(v["exposures"] for v in lift["variants"]) == 13  # the late one counts here


def test_measured_lift_test_vectors():
    from levered_server.engine.holdout import ArmStats, measured_lift, sample_ratio

    lift = measured_lift(ArmStats(290, 29, 29), ArmStats(2710, 330, 330), boolean=True)
    assert lift.lift_percent == pytest.approx(21.7712, abs=1e-4)
    assert lift.lift_ci == pytest.approx((-22.0403, 65.5828), abs=1e-4)
    assert lift.p_value == pytest.approx(0.3301, abs=1e-4)
    srm = sample_ratio(290, 2710, 0.1)
    assert srm.p_value == pytest.approx(0.5428, abs=1e-4) and srm.ok is True
    assert measured_lift(ArmStats(0, 0, 0), ArmStats(5, 1, 1), boolean=True).holdout_rate is None
