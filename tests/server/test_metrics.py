"""docs/api.md 9: metrics are dry-run against the warehouse before they are saved."""

from __future__ import annotations

import pytest

from tests.server.conftest import assert_error, field_codes
from tests.server.factories import REVENUE_SQL, SIGNUP_SQL, make_metric, make_optimization, metric_body


def _count(org):
    return len(org.get("/api/v2/warehouse/metrics").json()["metrics"])


def test_create_bool_metric_defaults(org):
    m = make_metric(org)
    assert m["column_mapping"] == {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc",
                                   "value": None, "reward_type": "bool"}
    assert m["sql"] == SIGNUP_SQL and m["updated_at"] is None
    assert m["created_at"].endswith("Z") and len(m["created_at"]) == 20
    assert org.get(f"/api/v2/warehouse/metrics/{m['id']}").json()["name"] == "Sign-ups (7d)"


def test_numeric_metric_inferred_from_value(org):
    m = make_metric(org, name="Revenue", sql=REVENUE_SQL, value="value")
    assert m["column_mapping"]["reward_type"] == "numeric"


def test_trailing_semicolon_and_column_case(org):
    m = make_metric(org, sql=SIGNUP_SQL + ";", anonymous_id="ANONYMOUS_ID")
    assert m["column_mapping"]["anonymous_id"] == "ANONYMOUS_ID"


@pytest.mark.parametrize("mapping,field,code", [
    ({"reward_type": "numeric"}, "column_mapping.value", "required"),
    ({"reward_type": "bool", "value": "value"}, "column_mapping.value", "invalid_value"),
    ({"reward_type": "count"}, "column_mapping.reward_type", "invalid_value"),
    ({"outcomes": ["a"]}, "column_mapping.outcomes", "unknown_field"),
    ({"anonymous_id": ""}, "column_mapping.anonymous_id", "too_short"),
])
def test_mapping_rules(org, mapping, field, code):
    before = _count(org)
    assert field_codes(org.post("/api/v2/warehouse/metrics",
                                json=metric_body(**mapping)))[field] == code
    assert _count(org) == before


def test_missing_fields_are_reported_together(org):
    codes = field_codes(org.post("/api/v2/warehouse/metrics", json={"name": " "}))
    assert codes == {"name": "too_short", "sql": "required", "column_mapping": "required"}


def test_broken_sql_carries_the_warehouse_message(org):
    before = _count(org)
    resp = org.post("/api/v2/warehouse/metrics",
                    json=metric_body(sql="SELECT * FROM signups"))
    err = assert_error(resp, 422, "invalid_metric_sql")
    assert err["details"]["provider"] == "duckdb"
    assert "signups" in err["details"]["warehouse_message"]
    assert err["message"].startswith("The warehouse rejected the metric SQL: ")
    assert _count(org) == before


def test_missing_mapped_column(org):
    resp = org.post("/api/v2/warehouse/metrics",
                    json=metric_body(sql="SELECT anonymous_id FROM rewards", timestamp="ts"))
    err = assert_error(resp, 422, "invalid_metric_sql")
    assert err["details"]["missing_columns"] == ["ts"]
    assert err["details"]["available_columns"] == ["anonymous_id"]


def test_wrong_column_types(org):
    sql = "SELECT anonymous_id, name AS ts, name AS v FROM rewards"
    err = assert_error(org.post("/api/v2/warehouse/metrics",
                                json=metric_body(sql=sql, timestamp="ts", value="v")),
                       422, "invalid_metric_sql")
    assert "not a timestamp" in err["message"]


@pytest.mark.parametrize("sql,kind", [
    ("DROP TABLE rewards", "DROP"),
    ("INSERT INTO rewards (name) VALUES ('x')", "INSERT"),
    ("SELECT 1 AS a; SELECT 2 AS b", None),
])
def test_metric_sql_must_be_one_read_only_query(org, sql, kind):
    err = assert_error(org.post("/api/v2/warehouse/metrics", json=metric_body(sql=sql)),
                       400, "read_only_violation")
    assert err.get("details", {}).get("statement_type") == kind


def test_list_newest_first_and_delete(org):
    a = make_metric(org, name="a")
    b = make_metric(org, name="b")
    ids = [m["id"] for m in org.get("/api/v2/warehouse/metrics").json()["metrics"]]
    assert ids[:2] == [b["id"], a["id"]]
    resp = org.delete(f"/api/v2/warehouse/metrics/{a['id']}")
    assert resp.json()["deleted"] is True and resp.json()["id"] == a["id"]
    assert_error(org.get(f"/api/v2/warehouse/metrics/{a['id']}"), 404, "not_found")
    assert_error(org.delete(f"/api/v2/warehouse/metrics/{a['id']}"), 404, "not_found")
    assert a["id"] not in [m["id"] for m in org.get("/api/v2/warehouse/metrics").json()["metrics"]]


def test_metric_in_use_by_live_optimization(org):
    m = make_metric(org)
    opt = make_optimization(org, m["id"])
    err = assert_error(org.delete(f"/api/v2/warehouse/metrics/{m['id']}"), 409, "metric_in_use")
    assert err["details"]["optimizations"] == [{"id": opt["id"], "name": opt["name"],
                                                "status": "live"}]
    assert org.patch(f"/api/v2/optimizations/{opt['id']}",
                     json={"status": "completed"}).status_code == 200
    assert org.delete(f"/api/v2/warehouse/metrics/{m['id']}").status_code == 200
    err = assert_error(org.patch(f"/api/v2/optimizations/{opt['id']}", json={"status": "live"}),
                       409, "metric_deleted")
    assert err["details"] == {"reward_metric_id": m["id"]}
    assert org.get(f"/api/v2/optimizations/{opt['id']}").json()["status"] == "completed"


def test_preview_binds_start_date(org):
    m = make_metric(org)
    resp = org.get(f"/api/v2/warehouse/metrics/{m['id']}/preview",
                   params={"start_date": "2026-01-02", "limit": 5})
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["start_date"] == "2026-01-02T00:00:00Z"
    assert body["columns"] == [{"name": "anonymous_id", "type": "VARCHAR"},
                               {"name": "timestamp_utc", "type": "TIMESTAMP"}]
    assert body["rows"] == [] and body["row_count"] == 0 and body["truncated"] is False


@pytest.mark.parametrize("params,name", [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                                         ({"limit": "x"}, "limit"),
                                         ({"start_date": "yesterday"}, "start_date")])
def test_preview_bad_parameters(org, params, name):
    m = make_metric(org)
    err = assert_error(org.get(f"/api/v2/warehouse/metrics/{m['id']}/preview", params=params),
                       400, "bad_request")
    assert err["details"] == {"parameter": name}


def test_unknown_and_malformed_ids_are_404(org):
    for mid in ("not-a-uuid", "699ede80-c94b-4f98-9c79-dd3e07748703"):
        assert_error(org.get(f"/api/v2/warehouse/metrics/{mid}"), 404, "not_found")
        assert_error(org.get(f"/api/v2/warehouse/metrics/{mid}/preview"), 404, "not_found")
