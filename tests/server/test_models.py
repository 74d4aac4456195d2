"""docs/api.md 8: list, show, untrained state, train below the burn-in, delete."""

from __future__ import annotations

import time

import pytest

from tests.server.conftest import assert_error, field_codes
from tests.server.factories import make_metric, make_optimization


def test_list_and_show(org):
    m = make_metric(org)
    a = make_optimization(org, m["id"], name="a")
    time.sleep(0.01)
    b = make_optimization(org, m["id"], name="b")
    models = org.get("/api/v2/models").json()["models"]
    assert [x["id"] for x in models[:2]] == [b["model_id"], a["model_id"]]
    assert models[0]["status"] == "untrained" and models[0]["bias"] == {}
    assert models[0]["last_run"] is None and models[0]["error"] is None
    org.patch(f"/api/v2/optimizations/{b['id']}", json={"status": "archived"})
    ids = [x["id"] for x in org.get("/api/v2/models").json()["models"]]
    assert b["model_id"] not in ids and a["model_id"] in ids
    ids = [x["id"] for x in org.get("/api/v2/models",
                                    params={"include_archived": "true"}).json()["models"]]
    assert b["model_id"] in ids
    assert [x["id"] for x in org.get("/api/v2/models", params={"limit": 1}).json()["models"]] \
        == [a["model_id"]]
    assert_error(org.get("/api/v2/models", params={"limit": 101}), 400, "bad_request")


def test_untrained_state_is_uniform(org):
    opt = make_optimization(org)
    state = org.get(f"/api/v2/models/{opt['model_id']}/state").json()
    assert state["status"] == "untrained" and state["version"] == 0
    assert state["observations"] == 0 and state["factor_importance"] == []
    assert [v["number"] for v in state["variants"]] == [1, 2, 3, 4, 5]
    for v in state["variants"]:
        assert v["prob_best"] == pytest.approx(0.2) and v["allocation"] == pytest.approx(0.2)
        assert v["weight"] == pytest.approx(0.9 / 5) and v["expected_reward_mean"] is None
        assert v["exposures"] == 0


def test_train_counts_observations_and_keeps_version(org, server):
    opt = make_optimization(org, holdout_percentage=0)
    for i in range(3):
        server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                           json={"anonymous_id": f"t{i}"})
    resp = org.post(f"/api/v2/models/{opt['model_id']}/train",
                    json={"bias": {"headline": 0.5}})
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["observations"] == 3 and body["version"] == 0
    assert body["status"] == "untrained"
    assert body["in_sample_metrics"] == {"historic_reward": 0.0, "expected_reward": None}
    model = org.get(f"/api/v2/models/{opt['model_id']}").json()
    assert model["bias"] == {"headline": 0.5}
    assert model["last_run"]["outcome"] == "skipped" and model["last_run"]["observations"] == 3
    assert model["last_run"]["trigger"] == "manual"
    empty = org.post(f"/api/v2/models/{opt['model_id']}/train").json()  # keeps the bias
    assert empty["observations"] == 3
    assert org.get(f"/api/v2/models/{opt['model_id']}").json()["bias"] == {"headline": 0.5}


@pytest.mark.parametrize("bias,field,code", [
    ({"font": 1}, "bias.font", "invalid_value"),
    ({"headline": "high"}, "bias.headline", "type"),
    ({"headline": 6}, "bias.headline", "out_of_range"),
])
def test_train_bias_rules(org, bias, field, code):
    opt = make_optimization(org)
    assert field_codes(org.post(f"/api/v2/models/{opt['model_id']}/train",
                                json={"bias": bias})) == {field: code}
    assert field_codes(org.post(f"/api/v2/models/{opt['model_id']}/train",
                                json={"bias": []})) == {"bias": "type"}


def test_train_archived_is_409(org):
    opt = make_optimization(org)
    org.patch(f"/api/v2/optimizations/{opt['id']}", json={"status": "archived"})
    err = assert_error(org.post(f"/api/v2/models/{opt['model_id']}/train"), 409,
                       "optimization_not_live")
    assert err["details"] == {"status": "archived"}


def test_failed_training_marks_the_model(org):
    m = make_metric(org)
    opt = make_optimization(org, m["id"])
    # Break the metric's SQL underneath it (the warehouse changed): training fails with 502.
    from levered_server.store.models import Metric

    with org.server.runtime.store.session(org.id) as s:
        s.get(Metric, m["id"]).sql = "SELECT anonymous_id, timestamp_utc FROM rewards_v2"
    err = assert_error(org.post(f"/api/v2/models/{opt['model_id']}/train"), 502,
                       "warehouse_error")
    assert "rewards_v2" in err["details"]["warehouse_message"]
    model = org.get(f"/api/v2/models/{opt['model_id']}").json()
    assert model["status"] == "failed" and model["error"]["code"] == "warehouse_error"
    assert model["last_run"]["outcome"] == "failed"
    assert org.get(f"/api/v2/optimizations/{opt['id']}").json()["model_status"] == "failed"


def test_delete_model(org):
    opt = make_optimization(org)
    mid = opt["model_id"]
    resp = org.delete(f"/api/v2/models/{mid}")
    assert resp.status_code == 200
    assert {k: v for k, v in resp.json().items() if k != "meta"} == {"id": mid, "deleted": True}
    for path in (f"/api/v2/models/{mid}", f"/api/v2/models/{mid}/state"):
        assert_error(org.get(path), 404, "not_found")
    assert_error(org.delete(f"/api/v2/models/{mid}"), 404, "not_found")
    assert_error(org.post(f"/api/v2/models/{mid}/train"), 404, "not_found")
    assert mid not in [m["id"] for m in org.get(
        "/api/v2/models", params={"include_archived": "true"}).json()["models"]]
