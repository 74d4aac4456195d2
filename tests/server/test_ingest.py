"""docs/api.md 11: ingestion — batches, per-event validation, 207, idempotency, foreign ids."""

from __future__ import annotations

import json

import pytest

from tests.server.conftest import assert_error, new_org
from tests.server.factories import make_optimization

V1 = {"headline": "Ship faster", "cta_text": "Get started"}
V4 = {"headline": "Build better", "cta_text": "Try it free"}


def exposure(opt, anon="user-1", variant=V4, **kw):
    return {"anonymous_id": anon, "optimization_id": opt["id"], "variant": variant, **kw}


def _total(org, opt):
    return org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()["total"]


def test_exposures_are_stored(org):
    opt = make_optimization(org)
    resp = org.post("/api/v2/ingest/exposures", json={"events": [
        exposure(opt, context={"country": "US"}, timestamp="2026-11-21T12:58:02.417+01:00",
                 propensity=0.25)]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1 and resp.json()["rejected"] == []
    obs = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()["observations"]
    assert len(obs) == 1
    o = obs[0]
    assert o["variant_number"] == 4 and o["variant"] == V4
    assert o["exposed_at"] == "2026-11-21T11:58:02.417Z"
    assert o["propensity"] == 0.25 and o["context"] == {"country": "US"}
    assert o["reward"] == 0  # window closed, nothing credited


@pytest.mark.parametrize("event,code", [
    ({"anonymous_id": "a", "variant": V1}, "missing_field"),
    ({"optimization_id": "{id}", "variant": V1}, "missing_field"),
    ({"anonymous_id": "a", "optimization_id": "{id}", "variant": {"headline": "Ship fast",
                                                                    "cta_text": "Get started"}},
     "invalid_variant"),
    ({"anonymous_id": "a", "optimization_id": "{id}",
      "variant": {"headline": "Scale up", "cta_text": "Try it free"}}, "invalid_variant"),
    ({"anonymous_id": "a", "optimization_id": "{id}", "variant": {"headline": "Ship faster"}},
     "invalid_variant"),
    ({"anonymous_id": "a", "optimization_id": "{id}", "variant": V1,
      "context": {"browser": "x"}}, "unknown_context_factor"),
    ({"anonymous_id": "a", "optimization_id": "{id}", "variant": V1, "context": {"country": 3}},
     "invalid_field"),
    ({"anonymous_id": "a", "optimization_id": "{id}", "variant": V1,
      "timestamp": "2026-11-21T11:58:02"}, "invalid_timestamp"),
    ({"anonymous_id": "a", "optimization_id": "{id}", "variant": V1, "propensity": 0},
     "invalid_field"),
    ({"anonymousId": "a", "optimization_id": "{id}", "variant": V1}, "unknown_field"),
    ({"anonymous_id": "a", "optimization_id": "not-a-uuid", "variant": V1}, "invalid_field"),
])
def test_bad_events_are_rejected_and_the_rest_written(org, event, code):
    opt = make_optimization(org)
    bad = {k: (opt["id"] if v == "{id}" else v) for k, v in event.items()}
    resp = org.post("/api/v2/ingest/exposures", json={"events": [exposure(opt), bad]})
    assert resp.status_code == 207, resp.text
    body = resp.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, code)]
    assert _total(org, opt) == 1


def test_invalid_variant_message(org):
    opt = make_optimization(org)
    bad = exposure(opt, variant={"headline": "Ship fast", "cta_text": "Get started"})
    rejected = org.post("/api/v2/ingest/exposures", json={"events": [bad]}).json()["rejected"]
    assert rejected[0]["message"] == 'variant.headline: "Ship fast" is not a level of headline'


def test_idempotency_keys_within_and_across_batches(org):
    opt = make_optimization(org)
    batch = {"events": [exposure(opt, idempotency_key="k1"), exposure(opt, idempotency_key="k1"),
                        exposure(opt, idempotency_key="k2")]}
    first = org.post("/api/v2/ingest/exposures", json=batch).json()
    assert (first["accepted"], first["duplicates"]) == (3, 1)
    again = org.post("/api/v2/ingest/exposures", json=batch).json()
    assert (again["accepted"], again["duplicates"]) == (3, 3)
    assert _total(org, opt) == 2


def test_serve_exposure_id_is_a_duplicate(org, server):
    opt = make_optimization(org)
    served = server.client.post(f"/api/v2/optimizations/{opt['id']}/serve",
                                json={"anonymous_id": "s1"}).json()
    event = exposure(opt, anon="s1", variant=served["variant"], exposure_id=served["exposure_id"])
    body = org.post("/api/v2/ingest/exposures", json={"events": [event]}).json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert _total(org, opt) == 1


def test_default_propensity_from_the_lock(org, server):
    opt = make_optimization(org, holdout_percentage=0)
    bv = server.client.post("/api/v2/optimizations/best-variant",
                            json={"optimization_id": opt["id"], "anonymous_id": "L"}).json()
    org.post("/api/v2/ingest/exposures", json={"events": [
        exposure(opt, anon="L", variant=bv["variant"], exposure_id=bv["exposure_id"])]})
    obs = org.get(f"/api/v2/optimizations/{opt['id']}/observations").json()["observations"]
    assert obs[0]["exposure_id"] == bv["exposure_id"]
    assert obs[0]["propensity"] == bv["propensity"] == pytest.approx(0.2)


def test_foreign_optimization_forbids_the_whole_batch(org, other_org):
    mine = make_optimization(org)
    theirs = make_optimization(other_org)
    resp = org.post("/api/v2/ingest/exposures", json={"events": [
        exposure(mine), exposure(theirs), exposure(mine)]})
    err = assert_error(resp, 403, "forbidden")
    assert err["details"] == {"indexes": [1]}
    assert _total(org, mine) == 0 and _total(other_org, theirs) == 0
    resp = org.post("/api/v2/ingest/rewards", json={"events": [
        {"anonymous_id": "a", "name": "x", "optimization_id": theirs["id"]}]})
    assert assert_error(resp, 403, "forbidden")["details"] == {"indexes": [0]}


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": {}},
                                  {"events": [{}] * 501}])
def test_batch_limits(org, body):
    assert_error(org.post("/api/v2/ingest/rewards", json=body), 400, "bad_request")


def test_batch_over_five_megabytes(org):
    big = {"events": [{"anonymous_id": "a", "name": "x" * 200, "properties": {"p": "y" * 12000}}
                      for _ in range(450)]}
    assert_error(org.post("/api/v2/ingest/rewards", json=big), 400, "bad_request")


def test_rewards_validation_and_storage(org):
    events = [
        {"anonymous_id": "user-42", "name": "signup_completed",
         "timestamp": "2026-11-21T12:01:45.002Z", "idempotency_key": "signup-user-42"},
        {"anonymous_id": "user-7", "name": "purchase", "value": 49.0,
         "properties": {"plan": "pro"}},
        {"anonymous_id": "user-8", "name": "purchase", "value": "49"},
        {"anonymous_id": "user-9", "name": "purchase", "properties": {"x": "y" * 17000}},
        {"anonymous_id": "user-9"},
    ]
    body = org.post("/api/v2/ingest/rewards", json={"events": events}).json()
    assert body["accepted"] == 2
    assert [(r["index"], r["code"]) for r in body["rejected"]] == \
        [(2, "invalid_field"), (3, "invalid_field"), (4, "missing_field")]
    rows = org.post("/api/v2/warehouse/query", json={
        "sql": "SELECT anonymous_id, name, value, properties FROM rewards ORDER BY anonymous_id"
    }).json()["rows"]
    assert rows == [{"anonymous_id": "user-42", "name": "signup_completed", "value": 1.0,
                     "properties": None},
                    {"anonymous_id": "user-7", "name": "purchase", "value": 49.0,
                     "properties": {"plan": "pro"}}]


def test_access_token_is_forbidden(org, server):
    from tests.server.test_identity import _session_token

    token, _ = _session_token(server, org)
    resp = server.client.post("/api/v2/ingest/rewards", json={"events": [
        {"anonymous_id": "a", "name": "x"}]}, headers={"Authorization": f"Bearer {token}"})
    assert assert_error(resp, 403, "forbidden")["message"] == "Ingestion requires an API key."


def test_ingestion_needs_a_key(server):
    assert_error(server.client.post("/api/v2/ingest/rewards", json={"events": []}), 401,
                 "unauthorized")
    assert new_org  # the org fixtures build keys the way `api-key create` does


def test_concurrent_serves_flushes_and_reads(org, server):
    import concurrent.futures

    opt = make_optimization(org, holdout_percentage=0)
    url = f"/api/v2/optimizations/{opt['id']}/serve"

    def serve(i):
        return server.client.post(url, json={"anonymous_id": f"c{i}"}).status_code

    def read(_):
        a = org.post("/api/v2/warehouse/query", json={"sql": "SELECT count(*) AS n FROM "
                                                              "exposures"}).status_code
        b = org.get(f"/api/v2/optimizations/{opt['id']}/observations").status_code
        return max(a, b)

    def flush(_):
        server.runtime.exposures.flush()
        return 200

    jobs = [serve] * 120 + [read] * 20 + [flush] * 20
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda ij: ij[1](ij[0]), enumerate(jobs)))
    assert set(codes) == {200}
    assert _total(org, opt) == 120


def test_nul_characters_reject_only_their_event(org):
    opt = make_optimization(org)
    body = org.post("/api/v2/ingest/exposures", json={"events": [
        exposure(opt, anon="ok"), exposure(opt, anon="bad\x00id")]}).json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "code": "invalid_field",
                                 "message": "anonymous_id must not contain NUL characters"}]


def _raw_post(org, path, body):
    # json.dumps escapes a lone surrogate as "\ud800" (httpx's own encoder would fail on it).
    return org.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("field", ["anonymous_id", "idempotency_key", "properties", "name"])
def test_lone_surrogates_reject_only_their_rewards_event(org, field):
    bad = {"anonymous_id": "b", "name": "x",
           field: {"plan\ud800": "pro"} if field == "properties" else "bad\ud800id"}
    resp = _raw_post(org, "/api/v2/ingest/rewards",
                     {"events": [{"anonymous_id": "ok", "name": "x"}, bad]})
    assert resp.status_code == 207, resp.text
    body = resp.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "invalid_field")]
    assert "not valid Unicode" in body["rejected"][0]["message"]
    assert body["rejected"][0]["message"].startswith(field)


@pytest.mark.parametrize("where", ["anonymous_id", "idempotency_key", "context"])
def test_lone_surrogates_reject_only_their_exposure_event(org, where):
    opt = make_optimization(org)
    bad = exposure(opt, **({"context": {"country": "U\udfffS"}} if where == "context"
                           else {where: "bad\ud800id"}))
    resp = _raw_post(org, "/api/v2/ingest/exposures", {"events": [exposure(opt), bad]})
    assert resp.status_code == 207, resp.text
    assert [(r["index"], r["code"]) for r in resp.json()["rejected"]] == [(1, "invalid_field")]
    assert _total(org, opt) == 1


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-14:00"])
def test_out_of_range_timestamps_are_invalid_timestamp(org, ts):
    opt = make_optimization(org)
    resp = org.post("/api/v2/ingest/exposures", json={"events": [
        exposure(opt), exposure(opt, timestamp=ts)]})
    assert resp.status_code == 207, resp.text
    assert [(r["index"], r["code"]) for r in resp.json()["rejected"]] == \
        [(1, "invalid_timestamp")]
    rewards = org.post("/api/v2/ingest/rewards", json={"events": [
        {"anonymous_id": "a", "name": "x", "timestamp": ts}]})
    assert rewards.status_code == 207, rewards.text
    assert rewards.json()["rejected"][0]["code"] == "invalid_timestamp"
    assert "out of range" in rewards.json()["rejected"][0]["message"]


def test_only_warehouse_failures_are_unavailable(org, monkeypatch):
    from levered_server.services import ingest
    from levered_server.warehouse.base import WarehouseFailure

    def busy(*_a, **_k):
        raise WarehouseFailure("embedded warehouse busy")

    monkeypatch.setattr(ingest, "_write", busy)
    resp = org.post("/api/v2/ingest/rewards", json={"events": [{"anonymous_id": "a",
                                                                "name": "x"}]})
    assert assert_error(resp, 503, "unavailable")["message"].endswith("Retry the batch.")
    assert resp.headers["retry-after"] == "5"

    def bug(*_a, **_k):
        raise ValueError("a bug, not a transient failure")

    monkeypatch.setattr(ingest, "_write", bug)
    resp = org.post("/api/v2/ingest/rewards", json={"events": [{"anonymous_id": "a",
                                                                "name": "x"}]})
    assert assert_error(resp, 500, "internal")["message"].startswith("Internal server error")
