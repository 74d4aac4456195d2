"""docs/api.md 6.1–6.5: create with full validation (nothing stored on error), list, show, update."""

from __future__ import annotations

import time

import pytest

from tests.server.conftest import assert_error, field_codes
from tests.server.factories import REVENUE_SQL, hero, make_metric, make_optimization


def _count(org):
    return len(org.get("/api/v2/optimizations",
                       params={"include_archived": "true", "limit": 100}).json()["optimizations"])


def _models(org):
    return len(org.get("/api/v2/models", params={"include_archived": "true",
                                                 "limit": 100}).json()["models"])


def test_create_normalizes_and_creates_a_model(org):
    metric = make_metric(org)
    opt = make_optimization(org, metric["id"])
    assert opt["status"] == "live" and opt["model_status"] == "untrained"
    assert opt["variants_count"] == 5 and opt["winner"] is None and opt["summary"] is None
    cfg = opt["training_data_config"]
    assert cfg["design_factors"][1] == {"name": "cta_text", "dtype": "str",
                                        "levels": ["Get started", "Try it free"]}
    assert cfg["context_factors"] == [{"name": "country", "dtype": "str", "levels": ["US", "DE"]},
                                      {"name": "device_type", "dtype": "str", "levels": []}]
    assert cfg["attribution"] == {"type": "last_touch", "conversion_window_hours": 24}
    # keys of excluded combinations in design-factor order
    assert list(opt["excluded_combinations"][0]) == ["headline", "cta_text"]
    model = org.get(f"/api/v2/models/{opt['model_id']}").json()
    assert model["optimization_id"] == opt["id"] and model["version"] == 0
    assert model["training_data_config"] == cfg
    shown = org.get(f"/api/v2/optimizations/{opt['id']}").json()
    assert {k: v for k, v in shown.items() if k != "meta"} == \
        {k: v for k, v in opt.items() if k != "meta"}


def test_defaults_mab_bool_reward_from_metric(org):
    metric = make_metric(org, name="Revenue", sql=REVENUE_SQL, value="value")
    body = {"name": "  Minimal  ", "reward_metric_id": metric["id"],
            "training_data_config": {"design_factors": [
                {"name": "badge", "levels": [False, True]}]}}
    resp = org.post("/api/v2/optimizations", json=body)
    opt = resp.json()
    assert resp.status_code == 201, opt
    assert opt["name"] == "Minimal" and opt["model_type"] == "cmab"
    assert opt["holdout_percentage"] == 10 and opt["excluded_combinations"] == []
    cfg = opt["training_data_config"]
    assert cfg["design_factors"][0]["dtype"] == "bool"
    assert cfg["reward"] == {"name": "reward", "type": "numeric"}


INVALID = [
    ({"name": None}, "name", "type"),
    ({"name": "x" * 201}, "name", "too_long"),
    ({"model_type": "ucb"}, "model_type", "invalid_value"),
    ({"holdout_percentage": 51}, "holdout_percentage", "out_of_range"),
    ({"holdout_percentage": "10"}, "holdout_percentage", "type"),
    ({"reward_metric_id": "nope"}, "reward_metric_id", "format"),
    ({"reward_metric_id": "699ede80-c94b-4f98-9c79-dd3e07748703"}, "reward_metric_id", "not_found"),
    ({"colour": "red"}, "colour", "unknown_field"),
    ({"excluded_combinations": [{}]}, "excluded_combinations[0]", "too_short"),
    ({"excluded_combinations": [{"headline": "Nope"}]}, "excluded_combinations[0].headline",
     "invalid_value"),
    ({"excluded_combinations": [{"font": "x"}]}, "excluded_combinations[0].font", "invalid_value"),
    ({"excluded_combinations": [{"headline": "Scale up"}, {"headline": "Scale up"}]},
     "excluded_combinations[1]", "duplicate"),
    ({"excluded_combinations": [{"headline": "Ship faster"}]}, "excluded_combinations[0]",
     "excluded_baseline"),
    ({"excluded_combinations": [{"headline": "Build better"}, {"headline": "Scale up"},
                                {"cta_text": "Try it free"}]},
     "excluded_combinations", "too_few_variants"),
]


@pytest.mark.parametrize("change,field,code", INVALID)
def test_invalid_create_stores_nothing(org, change, field, code):
    metric = make_metric(org)
    before, models_before = _count(org), _models(org)
    body = hero(metric["id"], **change)
    if change.get("name") is None and "name" in change:
        body["name"] = None
    codes = field_codes(org.post("/api/v2/optimizations", json=body))
    assert codes.get(field) == code, codes
    assert _count(org) == before and _models(org) == models_before


def _factors(org, metric, design, context=None, **kw):
    body = hero(metric["id"], excluded_combinations=[], **kw)
    body["training_data_config"]["design_factors"] = design
    body["training_data_config"]["context_factors"] = context or []
    return field_codes(org.post("/api/v2/optimizations", json=body))


def test_factor_rules(org):
    m = make_metric(org)
    p = "training_data_config"
    assert _factors(org, m, []) == {f"{p}.design_factors": "too_short"}
    assert _factors(org, m, [{"name": "a", "levels": ["x"]}]) == \
        {f"{p}.design_factors[0].levels": "too_short"}
    assert _factors(org, m, [{"name": "1a", "levels": ["x", "y"]}]) == \
        {f"{p}.design_factors[0].name": "format"}
    assert _factors(org, m, [{"name": "a", "levels": ["x", "x"]}]) == \
        {f"{p}.design_factors[0].levels[1]": "duplicate"}
    assert _factors(org, m, [{"name": "a", "dtype": "int", "levels": [1, 2]}]) == \
        {f"{p}.design_factors[0].dtype": "invalid_value"}
    assert _factors(org, m, [{"name": "a", "levels": ["x", 2]}]) == \
        {f"{p}.design_factors[0].levels[1]": "type"}
    assert _factors(org, m, [{"name": "a", "levels": ["x", "y"]},
                             {"name": "a", "levels": ["x", "y"]}]) == \
        {f"{p}.design_factors[1].name": "duplicate"}
    assert _factors(org, m, [{"name": "a", "levels": ["x", "y"]}],
                    [{"name": "a"}]) == {f"{p}.context_factors[0].name": "duplicate"}
    many = [{"name": f"c{i}"} for i in range(21)]
    assert _factors(org, m, [{"name": "a", "levels": ["x", "y"]}], many) == \
        {f"{p}.context_factors": "too_many"}


def test_schema_errors_do_not_hide_the_other_problems(org):
    # A one-level factor fails the schema; the unknown metric, the repeated factor name and the
    # repeated level are still reported in the same answer (docs/api.md 1.5), and nothing is stored.
    p = "training_data_config"
    body = hero("00000000-0000-4000-8000-000000000000", excluded_combinations=[])
    body["training_data_config"]["design_factors"] = [
        {"name": "a", "levels": ["x"]}, {"name": "a", "levels": ["x", "y", "x"]}]
    before = (_count(org), _models(org))
    assert field_codes(org.post("/api/v2/optimizations", json=body)) == {
        f"{p}.design_factors[0].levels": "too_short", "reward_metric_id": "not_found",
        f"{p}.design_factors[1].name": "duplicate", f"{p}.design_factors[1].levels[2]": "duplicate"}
    body["reward_metric_id"] = "not-a-uuid"
    assert field_codes(org.post("/api/v2/optimizations", json=body))["reward_metric_id"] == "format"
    assert (_count(org), _models(org)) == before


def test_too_many_combinations_message(org):
    m = make_metric(org)
    design = [{"name": f"f{i}", "levels": [str(j) for j in range(n)]}
              for i, n in enumerate([5, 5, 3, 3, 5])]
    body = hero(m["id"], excluded_combinations=[])
    body["training_data_config"]["design_factors"] = design
    err = assert_error(org.post("/api/v2/optimizations", json=body), 422, "validation_error")
    assert err["details"]["fields"][0]["code"] == "too_many"
    assert err["details"]["fields"][0]["message"] == \
        "5 × 5 × 3 × 3 × 5 = 1,125 variants; the limit is 1,024"


def test_reward_type_must_match_metric(org):
    m = make_metric(org)
    body = hero(m["id"])
    body["training_data_config"]["reward"]["type"] = "numeric"
    assert field_codes(org.post("/api/v2/optimizations", json=body)) == \
        {"training_data_config.reward.type": "type_mismatch"}


def test_several_problems_at_once(org):
    m = make_metric(org)
    body = hero(m["id"], holdout_percentage=99, model_type="x")
    body["training_data_config"]["attribution"] = {"type": "first_touch",
                                                   "conversion_window_hours": 0}
    codes = field_codes(org.post("/api/v2/optimizations", json=body))
    assert codes == {"holdout_percentage": "out_of_range", "model_type": "invalid_value",
                     "training_data_config.attribution.type": "invalid_value",
                     "training_data_config.attribution.conversion_window_hours": "out_of_range"}


def test_list_order_limit_offset_archived(org):
    m = make_metric(org)
    a = make_optimization(org, m["id"], name="a")
    time.sleep(0.01)
    b = make_optimization(org, m["id"], name="b")
    time.sleep(0.01)
    c = make_optimization(org, m["id"], name="c")
    org.patch(f"/api/v2/optimizations/{a['id']}", json={"name": "a2"})  # newest update
    names = lambda r: [o["name"] for o in r.json()["optimizations"]]  # noqa: E731
    assert names(org.get("/api/v2/optimizations")) == ["a2", "c", "b"]
    assert names(org.get("/api/v2/optimizations", params={"order_by": "created_at"})) == \
        ["c", "b", "a2"]
    assert names(org.get("/api/v2/optimizations", params={"limit": 1, "offset": 1})) == ["c"]
    org.patch(f"/api/v2/optimizations/{c['id']}", json={"status": "archived"})
    assert names(org.get("/api/v2/optimizations")) == ["a2", "b"]
    assert "c" in names(org.get("/api/v2/optimizations", params={"include_archived": "1"}))
    assert org.get(f"/api/v2/optimizations/{c['id']}").json()["status"] == "archived"
    assert b["id"]


@pytest.mark.parametrize("params,name", [
    ({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit"),
    ({"order_by": "name"}, "order_by"), ({"include_archived": "maybe"}, "include_archived"),
    ({"offset": -1}, "offset"), ({"offset": 100001}, "offset"),
])
def test_list_bad_parameters(org, params, name):
    err = assert_error(org.get("/api/v2/optimizations", params=params), 400, "bad_request")
    assert err["details"] == {"parameter": name}


def test_status_transitions_and_winner(org):
    opt = make_optimization(org)
    url = f"/api/v2/optimizations/{opt['id']}"
    same = org.patch(url, json={"status": "live"}).json()
    assert same["updated_at"] == opt["updated_at"]
    done = org.patch(url, json={"status": "completed"}).json()
    assert done["status"] == "completed"
    # untrained model: the winner is variant #1
    assert done["winner"] == {"variant_number": 1,
                              "variant": {"headline": "Ship faster", "cta_text": "Get started"},
                              "variant_key": '{"cta_text":"Get started","headline":"Ship faster"}'}
    archived = org.patch(url, json={"status": "archived", "name": "Old hero"}).json()
    assert archived["status"] == "archived" and archived["name"] == "Old hero"
    assert archived["winner"] is None
    assert org.patch(url, json={"status": "live"}).json()["status"] == "live"


def test_update_rules(org):
    opt = make_optimization(org)
    url = f"/api/v2/optimizations/{opt['id']}"
    assert field_codes(org.patch(url, json={})) == {"status": "required"}
    assert field_codes(org.patch(url, json={"status": "paused"})) == {"status": "invalid_value"}
    assert field_codes(org.patch(url, json={"name": ""})) == {"name": "too_short"}
    assert field_codes(org.patch(url, json={"holdout_percentage": 5, "colour": 1})) == \
        {"holdout_percentage": "immutable", "colour": "unknown_field"}
    assert_error(org.patch(url, content=b"[]", headers={"Content-Type": "application/json"}),
                 400, "bad_request")
    assert org.get(url).json()["holdout_percentage"] == 10


def test_unknown_ids_are_404(org):
    for oid in ("nope", "699ede80-c94b-4f98-9c79-dd3e07748703"):
        assert_error(org.get(f"/api/v2/optimizations/{oid}"), 404, "not_found")
        assert_error(org.patch(f"/api/v2/optimizations/{oid}", json={"name": "x"}), 404,
                     "not_found")
