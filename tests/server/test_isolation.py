"""Organization B gets 404 for every object of organization A, on every endpoint."""

from __future__ import annotations

import re

from tests.server.conftest import assert_error, field_codes
from tests.server.factories import hero, make_metric, make_optimization


def test_org_b_cannot_see_or_touch_org_a(org, other_org):
    a, b = org, other_org
    metric = make_metric(a)
    opt = make_optimization(a, metric["id"])
    spare = make_optimization(a, metric["id"], name="spare")
    a.delete(f"/api/v2/models/{spare['model_id']}")  # so POST .../model would succeed for A
    key = a.post("/api/v2/api-keys", json={"name": "a-key"}).json()
    mid, oid = opt["model_id"], opt["id"]

    calls = [
        ("GET", f"/api/v2/optimizations/{oid}", None),
        ("PATCH", f"/api/v2/optimizations/{oid}", {"status": "archived"}),
        ("PATCH", f"/api/v2/optimizations/{oid}", {"name": "stolen"}),
        ("GET", f"/api/v2/optimizations/{oid}/observations", None),
        ("GET", f"/api/v2/optimizations/{oid}/results", None),
        ("POST", f"/api/v2/optimizations/{spare['id']}/model", None),
        ("GET", f"/api/v2/models/{mid}", None),
        ("GET", f"/api/v2/models/{mid}/state", None),
        ("POST", f"/api/v2/models/{mid}/train", {}),
        ("DELETE", f"/api/v2/models/{mid}", None),
        ("GET", f"/api/v2/warehouse/metrics/{metric['id']}", None),
        ("GET", f"/api/v2/warehouse/metrics/{metric['id']}/preview", None),
        ("DELETE", f"/api/v2/warehouse/metrics/{metric['id']}", None),
        ("DELETE", f"/api/v2/api-keys/{key['id']}", None),
        ("DELETE", f"/api/v2/api-keys/{a.key_id}", None),
    ]
    for method, path, body in calls:
        kw = {"json": body} if body is not None else {}
        resp = b.request(method, path, **kw)
        assert_error(resp, 404, "not_found")
        # uppercase ids are accepted too, and still isolated
        upper = re.sub(r"[0-9a-f-]{36}", lambda m: m.group().upper(), path)
        assert upper != path
        assert_error(b.request(method, upper, **kw), 404, "not_found")

    # referencing A's metric from B is an unknown metric
    assert field_codes(b.post("/api/v2/optimizations", json=hero(metric["id"]))) == \
        {"reward_metric_id": "not_found"}
    # ingestion naming A's optimization is refused for the whole batch
    assert_error(b.post("/api/v2/ingest/exposures", json={"events": [
        {"anonymous_id": "x", "optimization_id": oid,
         "variant": {"headline": "Ship faster", "cta_text": "Get started"}}]}), 403, "forbidden")
    # lists of B hold nothing of A
    assert b.get("/api/v2/optimizations",
                 params={"include_archived": "true"}).json()["optimizations"] == []
    assert b.get("/api/v2/models", params={"include_archived": "true"}).json()["models"] == []
    assert b.get("/api/v2/warehouse/metrics").json()["metrics"] == []
    assert [k["id"] for k in b.get("/api/v2/api-keys").json()["api_keys"]] == [b.key_id]
    assert b.get("/api/v2/warehouse/connections").json()["connection"]["id"] != \
        a.get("/api/v2/warehouse/connections").json()["connection"]["id"]

    # and A's objects are untouched
    shown = a.get(f"/api/v2/optimizations/{oid}").json()
    assert shown["status"] == "live" and shown["name"] == opt["name"]
    assert shown["model_id"] == mid
    assert a.get(f"/api/v2/models/{mid}").json()["last_run"] is None
    assert a.get(f"/api/v2/warehouse/metrics/{metric['id']}").status_code == 200
    assert key["id"] in [k["id"] for k in a.get("/api/v2/api-keys").json()["api_keys"]]
    assert a.get(f"/api/v2/optimizations/{spare['id']}").json()["model_id"] is None
