"""docs/api.md 8.1, 8.4, 8.5, 6.6, 2.4 with the engine: train from the warehouse, serve the posterior."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.server.conftest import BACKENDS, assert_error, database_url, make_settings, new_org, running
from tests.server.factories import make_metric, make_optimization

REWARDS_SQL = ("SELECT anonymous_id, timestamp_utc FROM rewards "
               "WHERE CASE WHEN name = 'boom' THEN CAST(name AS INTEGER) = 1 "
               "ELSE name = 'signup_completed' END")
HEADLINES = ["Ship faster", "Build better", "Scale up"]
CTAS = ["Get started", "Try it free"]
# Servable variants of HERO (#6 is excluded); #3 (Build better, Get started) converts best.
RATES = {1: 0.05, 2: 0.05, 3: 0.5, 4: 0.08, 5: 0.05}
# At 100 exposures each the baseline is precise enough (se/mean 0.17) for a weighted lift.
PRECISE_RATES = {1: 0.25, 2: 0.25, 3: 0.5, 4: 0.25, 5: 0.25}


def _variant(number: int) -> dict[str, str]:
    return {"headline": HEADLINES[(number - 1) // 2], "cta_text": CTAS[(number - 1) % 2]}


def _ts(seconds: float) -> str:
    t = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2) + dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seed(org, opt, per_variant: int, tag: str, rates=RATES) -> int:
    """Ingest exposures of every servable variant and deterministic conversions."""
    exposures, rewards = [], []
    for number, rate in rates.items():
        converting = round(per_variant * rate)
        for i in range(per_variant):
            anon = f"{tag}-{number}-{i}"
            exposures.append({"anonymous_id": anon, "optimization_id": opt["id"],
                              "variant": _variant(number), "timestamp": _ts(i),
                              "context": {"country": "US" if i % 2 else "DE"},
                              "in_holdout": False, "propensity": 0.2})
            if i < converting:
                rewards.append({"anonymous_id": anon, "name": "signup_completed",
                                "timestamp": _ts(i + 60)})
    for kind, events in (("exposures", exposures), ("rewards", rewards)):
        for start in range(0, len(events), 500):
            resp = org.post(f"/api/v2/ingest/{kind}", json={"events": events[start:start + 500]})
            assert resp.status_code == 200, resp.text
    return len(exposures)


@pytest.fixture
def trained(org):
    metric = make_metric(org, sql=REWARDS_SQL)
    opt = make_optimization(org, metric["id"], model_type="mab")
    seed(org, opt, 40, "a")
    resp = org.post(f"/api/v2/models/{opt['model_id']}/train")
    assert resp.status_code == 200, resp.text
    return opt, resp.json()


def test_train_publishes_a_version_that_finds_the_best_variant(org, trained):
    opt, body = trained
    assert body["status"] == "trained" and body["version"] == 1 and body["observations"] == 200
    assert body["trained_at"] is not None
    metrics = body["in_sample_metrics"]
    assert metrics["historic_reward"] == pytest.approx(sum(round(40 * r) for r in RATES.values())
                                                       / 200)
    expected = metrics["expected_reward"]
    assert expected["ci_lower"] <= expected["mean"] <= expected["ci_upper"]
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    assert state["status"] == "trained" and state["version"] == 1 and state["observations"] == 200
    assert state["last_run"]["outcome"] == "succeeded" and state["last_run"]["rows_scanned"] > 200
    best = max(state["variants"], key=lambda v: v["prob_best"])
    assert best["number"] == 3 and best["prob_best"] > 0.95
    assert {f["factor"] for f in state["factor_importance"]} == {"headline", "cta_text"}
    for v in state["variants"]:
        assert v["exposures"] == 40
        assert v["weight"] == pytest.approx(v["prob_best"] * 0.9)
        assert v["expected_reward_lo"] <= v["expected_reward_mean"] <= v["expected_reward_hi"]
    assert sum(v["allocation"] for v in state["variants"]) == pytest.approx(1)
    # mab, no bias, ε = 0, Thompson scale 0.6: narrower serving draws favour the leader more.
    assert best["allocation"] >= best["prob_best"]
    got = org.get(f"/api/v2/optimizations/{opt['id']}").json()
    assert got["model_status"] == "trained"
    assert got["summary"]["exposures"] == 200 and got["summary"]["variants_count"] == 5
    assert got["summary"]["confidence"] == pytest.approx(best["prob_best"])


def test_results_come_from_the_version(org, trained):
    opt, _ = trained
    res = org.get(f"/api/v2/optimizations/{opt['id']}/results").json()
    assert res["model_version"] == 1 and res["model_id"] == opt["model_id"]
    assert res["trained_at"] is not None
    for v in res["variants"]:
        for field in ("expected_reward_mean", "expected_reward_lo", "expected_reward_hi"):
            assert v[field] is not None
        assert v["weight"] == pytest.approx(v["prob_best"] * 0.9)
    assert sum(v["allocation"] for v in res["variants"]) == pytest.approx(1)
    assert sum(v["prob_best"] for v in res["variants"]) == pytest.approx(1)
    stats = res["stats"]
    assert stats["best_vs_baseline_percent"] > 100
    lo, hi = stats["best_vs_baseline_interval"]
    assert lo < stats["best_vs_baseline_percent"] < hi
    assert 0 <= stats["estimated_progress"] <= 1
    assert stats["estimated_improvement_interval"] is not None
    assert res["factor_importance"][0]["factor"] == "headline"
    assert res["interaction_importance"] is not None


def test_results_carry_the_propensity_weighted_estimates(org, trained):
    opt, _ = trained
    res = org.get(f"/api/v2/optimizations/{opt['id']}/results").json()
    for v in res["variants"]:
        weighted = v["propensity_weighted"]
        # mab: Hájek over the logged propensities (all 0.2 here: equal weights, n_eff = 40).
        assert weighted["estimator"] == "hajek"
        assert weighted["mean"] == pytest.approx(round(40 * RATES[v["number"]]) / 40)
        assert weighted["effective_n"] == pytest.approx(40)
        assert weighted["ci_lower"] < weighted["mean"] < weighted["ci_upper"]
    # The baseline converts 2 of 40 (se/mean 0.69): too imprecise for a ratio to mean anything.
    assert res["stats"]["best_vs_baseline_weighted_percent"] is None
    assert res["stats"]["best_vs_baseline_weighted_interval"] is None
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    assert [v["propensity_weighted"] for v in state["variants"]] == [
        v["propensity_weighted"] for v in res["variants"]]


def test_the_weighted_lift_is_reported_once_the_baseline_is_precise(org):
    metric = make_metric(org, sql=REWARDS_SQL)
    opt = make_optimization(org, metric["id"], model_type="mab")
    seed(org, opt, 100, "p", rates=PRECISE_RATES)
    assert org.post(f"/api/v2/models/{opt['model_id']}/train").status_code == 200
    stats = org.get(f"/api/v2/optimizations/{opt['id']}/results").json()["stats"]
    assert stats["best_vs_baseline_weighted_percent"] == pytest.approx(100 * (50 / 25 - 1))
    lo, hi = stats["best_vs_baseline_weighted_interval"]
    assert lo < stats["best_vs_baseline_weighted_percent"] < hi


def test_serve_follows_the_posterior(org, server, trained):
    opt, _ = trained
    served = {}
    for i in range(150):
        body = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                                  json={"anonymous_id": f"fresh-{i}", "dry_run": True}).json()
        assert body["model_version"] == 1
        if not body["in_holdout"]:
            served[body["variant_number"]] = served.get(body["variant_number"], 0) + 1
            assert 0 < body["propensity"] <= 1
    assert max(served, key=lambda n: served[n]) == 3
    assert served[3] > 0.8 * sum(served.values())


def test_failed_run_keeps_the_previous_version_serving(org, server, trained):
    opt, _ = trained
    before = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    org.post("/api/v2/ingest/rewards", json={"events": [
        {"anonymous_id": "x", "name": "boom", "timestamp": _ts(0)}]})
    resp = org.post(f"/api/v2/models/{opt['model_id']}/train")
    assert_error(resp, 502, "warehouse_error")
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    assert state["status"] == "failed" and state["error"]["code"] == "warehouse_error"
    assert state["last_run"]["outcome"] == "failed" and state["version"] == 1
    assert state["variants"] == before["variants"]
    body = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                              json={"anonymous_id": "after-failure"}).json()
    assert body["model_version"] == 1


def test_burn_in_publishes_nothing(org):
    metric = make_metric(org, sql=REWARDS_SQL)
    opt = make_optimization(org, metric["id"])
    seed(org, opt, 10, "b")
    body = org.post(f"/api/v2/models/{opt['model_id']}/train").json()
    assert body["status"] == "untrained" and body["version"] == 0 and body["observations"] == 50
    assert body["in_sample_metrics"]["expected_reward"] is None
    assert body["in_sample_metrics"]["historic_reward"] == pytest.approx(
        sum(round(10 * r) for r in RATES.values()) / 50)
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    assert state["last_run"]["outcome"] == "skipped"
    assert all(v["expected_reward_mean"] is None for v in state["variants"])


def test_bias_changes_the_allocation_only(org):
    metric = make_metric(org, sql=REWARDS_SQL)
    opt = make_optimization(org, metric["id"], model_type="mab")
    seed(org, opt, 40, "c", rates={1: 0.1, 2: 0.1, 3: 0.2, 4: 0.15, 5: 0.1})
    body = org.post(f"/api/v2/models/{opt['model_id']}/train",
                    json={"bias": {"headline": 5}}).json()
    assert body["version"] == 1
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    assert state["bias"] == {"headline": 5.0}
    prob = [v["prob_best"] for v in state["variants"]]
    alloc = [v["allocation"] for v in state["variants"]]
    assert max(abs(a - p) for a, p in zip(alloc, prob, strict=True)) > 0.02
    assert sum(alloc) == pytest.approx(1)
    for v in state["variants"]:
        assert v["weight"] == pytest.approx(v["prob_best"] * 0.9)


def test_cmab_trains_with_context(org, server):
    metric = make_metric(org, sql=REWARDS_SQL)
    opt = make_optimization(org, metric["id"])
    seed(org, opt, 100, "d", rates=PRECISE_RATES)
    assert org.post(f"/api/v2/models/{opt['model_id']}/train").json()["version"] == 1
    res = org.get(f"/api/v2/optimizations/{opt['id']}/results").json()
    best = max(res["variants"], key=lambda v: v["prob_best"])
    assert best["number"] == 3
    assert sum(v["allocation"] for v in res["variants"]) == pytest.approx(1)
    assert [c["factor"] for c in res["context_importance"]] == ["country"]
    assert {v["propensity_weighted"]["estimator"] for v in res["variants"]} == {"doubly_robust"}
    assert res["stats"]["best_vs_baseline_weighted_percent"] > 0
    # seen, unseen (population effect) and missing context values are all served
    for i, context in enumerate([{"country": "US"}, {"country": "FR"}, {}, {"device_type": "tv"}]):
        body = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                                  json={"anonymous_id": f"ctx-{i}", "context": context}).json()
        assert body["model_version"] == 1 and 0 < body["propensity"] <= 1, body


@pytest.fixture(scope="module", params=BACKENDS)
def auto_server(request, tmp_path_factory):
    with database_url(request.param) as url:
        settings = make_settings(tmp_path_factory.mktemp("auto"), url, train_every_serves=20,
                                 train_interval_minutes=0.01, min_train_observations=10)
        with running(settings, request.param) as srv:
            yield srv


def _wait_for_run(org, model_id: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        model = org.get(f"/api/v2/models/{model_id}").json()
        # The run is recorded when it starts: wait for its end.
        if model["last_run"] is not None and model["status"] != "training":
            return model
        time.sleep(0.1)
    raise AssertionError("no automatic training run")


def test_automatic_training_after_serves(auto_server):
    org = new_org(auto_server)
    opt = make_optimization(org, make_metric(org, sql=REWARDS_SQL)["id"], model_type="mab")
    for i in range(25):
        auto_server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                                json={"anonymous_id": f"s{i}"})
    model = _wait_for_run(org, opt["model_id"])
    assert model["last_run"]["trigger"] in ("serves", "schedule")
    assert model["status"] == "trained" and model["version"] >= 1


def test_automatic_training_on_schedule_after_ingest(auto_server):
    org = new_org(auto_server)
    opt = make_optimization(org, make_metric(org, sql=REWARDS_SQL)["id"], model_type="mab")
    seed(org, opt, 4, "e")
    model = _wait_for_run(org, opt["model_id"])
    assert model["last_run"]["trigger"] == "schedule" and model["version"] == 1


def test_a_restarted_process_rebuilds_the_same_policy(org, server, trained):
    from levered_server.services.versions import VersionCache
    from levered_server.store.models import Model, Optimization

    opt, _ = trained
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    with server.runtime.store.system_session() as s:
        model = s.get(Model, opt["model_id"])
        row = s.get(Optimization, opt["id"])
        rebuilt = VersionCache().get(model, row)
    assert rebuilt is not None and rebuilt.version == 1
    alloc = rebuilt.policy.allocation({})
    assert list(alloc) == pytest.approx([v["allocation"] for v in state["variants"]], abs=1e-12)


def test_a_cmab_refit_starts_from_the_last_prior_scales_and_rebuilds_exactly(org, server):
    from levered_server.services.versions import VersionCache
    from levered_server.store.models import Model, Optimization

    metric = make_metric(org, sql=REWARDS_SQL)
    opt = make_optimization(org, metric["id"])
    seed(org, opt, 40, "s1")
    assert org.post(f"/api/v2/models/{opt['model_id']}/train").json()["version"] == 1
    seed(org, opt, 40, "s2")
    assert org.post(f"/api/v2/models/{opt['model_id']}/train").json()["version"] == 2
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    with server.runtime.store.system_session() as s:
        model = s.get(Model, opt["model_id"])
        row = s.get(Optimization, opt["id"])
        saved = model.state
        rebuilt = VersionCache().get(model, row)
    assert saved["inputs"]["start_scales"] and set(saved["prior_scales"]) == {
        "main", "pair", "context", "design_context"}
    assert rebuilt is not None and rebuilt.version == 2
    for context in ({"country": "US"}, {"country": "DE"}, {}):
        assert rebuilt.policy.allocation(context).sum() == pytest.approx(1)
    alloc = rebuilt.policy.allocation({})
    fresh = server.runtime.serve_cache.versions.get(model, row)
    assert fresh is not None
    assert list(alloc) == pytest.approx(list(fresh.policy.allocation({})), abs=1e-12)
    assert len(state["variants"]) == 5


def test_one_run_per_model_at_a_time(org):
    from levered_server.services import models

    opt = make_optimization(org)
    models._TRAINING.add(opt["model_id"])
    try:
        assert_error(org.post(f"/api/v2/models/{opt['model_id']}/train"), 409,
                     "training_in_progress")
        assert org.get(f"/api/v2/models/{opt['model_id']}").json()["status"] == "training"
    finally:
        models._TRAINING.discard(opt["model_id"])
