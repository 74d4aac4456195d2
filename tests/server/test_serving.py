"""docs/api.md 2.4 and 7: holdout by hash, sticky locks, uniform policy, propensity, exposures."""

from __future__ import annotations

import collections
import json

import pytest

from levered_server.services.design import holdout_bucket
from tests.server.conftest import assert_error, field_codes
from tests.server.factories import make_optimization

OPT_VECTOR = "699ede80-c94b-4f98-9c79-dd3e07748703"


def test_holdout_hash_test_vectors():
    assert holdout_bucket(OPT_VECTOR, "user-12") == 626
    assert holdout_bucket(OPT_VECTOR, "user-42") == 2909
    assert holdout_bucket(OPT_VECTOR, "user-24") == 97


def _serve(server, opt_id, **body):
    return server.client.post(f"/api/v2/optimizations/{opt_id}/serve", json=body)


def _user(opt, holdout: bool, start=0):
    for i in range(start, start + 10_000):
        if (holdout_bucket(opt["id"], f"u{i}") < opt["holdout_percentage"] * 100) == holdout:
            return f"u{i}"
    raise AssertionError("no user found")


def test_serve_shape_public_and_cors(server, org):
    opt = make_optimization(org)
    resp = _serve(server, opt["id"], anonymous_id=_user(opt, False),
                  context={"country": "US", "device_type": "mobile"})
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["meta"] == {"request_id": resp.headers["x-request-id"], "organization_id": None}
    assert set(body) == {"optimization_id", "anonymous_id", "variant", "variant_number",
                         "variant_key", "in_holdout", "propensity", "model_version",
                         "exposure_id", "meta"}
    assert body["in_holdout"] is False and body["model_version"] == 0
    assert body["propensity"] == pytest.approx(1 / 5)
    assert list(body["variant"]) == ["headline", "cta_text"]
    assert body["variant_key"] == json.dumps(body["variant"], sort_keys=True,
                                             separators=(",", ":"))
    assert resp.headers["access-control-allow-origin"] == "*"
    pre = server.client.options(f"/api/v2/optimizations/{opt['id']}/serve")
    assert pre.status_code == 204 and pre.headers["access-control-max-age"] == "600"


def test_public_endpoints_ignore_any_credential(server, org):
    opt = make_optimization(org)
    for headers in ({"Authorization": "Bearer lvk_not-a-key"}, {"X-API-Key": "junk"}):
        resp = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                                  json={"anonymous_id": "pub"}, headers=headers)
        assert resp.status_code == 200 and resp.json()["meta"]["organization_id"] is None


def test_holdout_users_get_the_baseline(server, org):
    opt = make_optimization(org)
    body = _serve(server, opt["id"], anonymous_id=_user(opt, True)).json()
    assert body["in_holdout"] is True and body["variant_number"] == 1
    assert body["propensity"] == 1.0


def test_assignment_is_sticky_and_never_excluded(server, org):
    opt = make_optimization(org)
    seen = collections.Counter()
    for i in range(60):
        user = _user(opt, False, start=i * 50)
        first = _serve(server, opt["id"], anonymous_id=user).json()
        again = _serve(server, opt["id"], anonymous_id=user, context={"country": "DE"}).json()
        assert again["variant_number"] == first["variant_number"]
        assert again["propensity"] == first["propensity"]
        seen[first["variant_number"]] += 1
    assert 6 not in seen  # (Scale up, Try it free) is excluded
    assert set(seen) <= {1, 2, 3, 4, 5} and len(seen) >= 3  # uniform draws spread out


def test_dry_run_writes_no_lock(server, org):
    opt = make_optimization(org)
    user = _user(opt, False)
    dry = _serve(server, opt["id"], anonymous_id=user, dry_run=True).json()
    assert dry["exposure_id"] is None
    obs = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()
    assert obs["total"] == 0
    real = _serve(server, opt["id"], anonymous_id=user).json()
    dry2 = _serve(server, opt["id"], anonymous_id=user, dry_run=True).json()
    assert dry2["variant_number"] == real["variant_number"]  # reads the lock


def test_serve_records_exposures_with_propensity(server, org):
    opt = make_optimization(org)
    served = [_serve(server, opt["id"], anonymous_id=f"p{i}",
                     context={"country": "US"}).json() for i in range(4)]
    obs = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()
    assert obs["total"] == 4
    by_id = {o["exposure_id"]: o for o in obs["observations"]}
    for s in served:
        o = by_id[s["exposure_id"]]
        assert o["variant_number"] == s["variant_number"] and o["variant"] == s["variant"]
        assert o["propensity"] == s["propensity"] and o["in_holdout"] == s["in_holdout"]
        assert o["context"] == {"country": "US"} and o["reward"] is None


def test_anonymous_id_defaults_to_a_uuid(server, org):
    opt = make_optimization(org)
    resp = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve")
    assert resp.status_code == 200
    assert len(resp.json()["anonymous_id"]) == 36


@pytest.mark.parametrize("body,field,code", [
    ({"anonymous_id": ""}, "anonymous_id", "too_short"),
    ({"anonymous_id": "x" * 256}, "anonymous_id", "too_long"),
    ({"anonymous_id": 7}, "anonymous_id", "type"),
    ({"context": []}, "context", "type"),
    ({"context": {"browser": "x"}}, "context.browser", "unknown_context_factor"),
    ({"context": {"country": 1}}, "context.country", "type"),
    ({"context": {"country": {"a": 1}}}, "context.country", "type"),
    ({"dry_run": "yes"}, "dry_run", "type"),
])
def test_serve_validation(server, org, body, field, code):
    opt = make_optimization(org)
    assert field_codes(_serve(server, opt["id"], **body)) == {field: code}


def test_undeclared_level_and_unknown_top_level_fields_are_accepted(server, org):
    opt = make_optimization(org)
    resp = _serve(server, opt["id"], anonymous_id="z", context={"country": "FR",
                                                                "device_type": None},
                  sdk_version="1.2")
    assert resp.status_code == 200, resp.text


def test_text_plain_json_is_accepted_on_serve(server, org):
    opt = make_optimization(org)
    resp = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                              content=b'{"anonymous_id": "tp"}',
                              headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200 and resp.json()["anonymous_id"] == "tp"
    assert_error(server.client.post(f"/api/v2/optimizations/{opt['id']}/serve", content=b"[1]",
                                    headers={"Content-Type": "application/json"}),
                 400, "bad_request")


def test_best_variant_locks_without_exposure(server, org):
    opt = make_optimization(org)
    user = _user(opt, False)
    resp = server.client.post("/api/v2/optimizations/best-variant",
                              json={"optimizationId": opt["id"].upper(), "anonymousId": user})
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["optimization_id"] == opt["id"] and body["exposure_id"]
    served = _serve(server, opt["id"], anonymous_id=user).json()
    assert served["variant_number"] == body["variant_number"]
    total = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()["total"]
    assert total == 1  # only the serve call recorded an exposure


def test_best_variant_validation(server, org):
    url = "/api/v2/optimizations/best-variant"
    assert field_codes(server.client.post(url, json={})) == {"optimization_id": "required"}
    assert field_codes(server.client.post(url, json={"optimization_id": "x"})) == \
        {"optimization_id": "format"}
    assert_error(server.client.post(url, json={"optimization_id": OPT_VECTOR}), 404, "not_found")


def test_unknown_optimization_is_404(server):
    assert_error(_serve(server, OPT_VECTOR), 404, "not_found")
    assert_error(_serve(server, "not-a-uuid"), 404, "not_found")


def test_status_rules(server, org):
    opt = make_optimization(org)
    url = f"/api/v2/optimizations/{opt['id']}"
    user = _user(opt, True)  # a holdout user
    org.patch(url, json={"status": "completed"})
    body = _serve(server, opt["id"], anonymous_id=user).json()
    assert body["variant_number"] == 1 and body["in_holdout"] is False
    assert body["propensity"] == 1.0
    org.patch(url, json={"status": "archived"})
    err = assert_error(_serve(server, opt["id"], anonymous_id=user), 409, "optimization_not_live")
    assert err["details"] == {"status": "archived"}


def test_deleted_model_blocks_live_serving(server, org):
    opt = make_optimization(org)
    assert org.delete(f"/api/v2/models/{opt['model_id']}").json()["deleted"] is True
    shown = org.get(f"/api/v2/optimizations/{opt['id']}").json()
    assert shown["model_id"] is None and shown["model_status"] is None
    assert_error(_serve(server, opt["id"], anonymous_id="a"), 409, "model_unavailable")
    created = org.post(f"/api/v2/optimizations/{opt['id']}/model")
    assert created.status_code == 201 and created.json()["status"] == "untrained"
    assert_error(org.post(f"/api/v2/optimizations/{opt['id']}/model"), 409, "conflict")
    assert _serve(server, opt["id"], anonymous_id="a").status_code == 200


def test_the_fast_path_takes_exactly_the_serve_requests():
    from levered_server.api.serve import served_optimization as _served

    def scope(method: str, path: str) -> dict:
        return {"type": "http", "method": method, "path": path}

    base = "/api/v2/optimizations"
    assert _served(scope("POST", f"{base}/0b9c/serve")) == "0b9c"
    assert _served(scope("POST", f"{base}/best-variant")) == ""
    for method, path in [("OPTIONS", f"{base}/0b9c/serve"), ("GET", f"{base}/0b9c/serve"),
                         ("POST", f"{base}/a/b/serve"), ("POST", f"{base}//serve"),
                         ("POST", f"{base}/0b9c/serve/"), ("POST", base)]:
        assert _served(scope(method, path)) is None, (method, path)
    assert _served({"type": "websocket", "path": f"{base}/x/serve"}) is None


def test_fast_path_errors_carry_the_envelope_and_request_id(server):
    resp = server.client.post("/api/v2/optimizations/00000000-0000-4000-8000-000000000000/serve",
                              json={"anonymous_id": "u1"})
    body = resp.json()
    assert resp.status_code == 404 and body["error"]["code"] == "not_found"
    assert body["meta"]["request_id"] == resp.headers["x-request-id"]
