"""Conventions of docs/api.md 1: envelopes, request ids, errors, limits, health."""

from __future__ import annotations

import logging
import re

import pytest

from levered_server.services import identity
from tests.server.conftest import BACKENDS, assert_error, database_url, make_settings, new_org, running

REQ_ID = re.compile(r"^req_[0-9a-f]{24}$")


def test_healthz_reports_ok_and_version(server):
    resp = server.client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json().items() >= {"status": "ok", "version": "0.1.0"}.items()  # and "replica"
    assert REQ_ID.match(resp.headers["x-request-id"])


def test_success_envelope_has_fields_top_level_and_meta(org):
    resp = org.get("/api/v2/me")
    body = resp.json()
    assert resp.status_code == 200
    assert body["organization"]["id"] == org.id
    assert body["meta"] == {"request_id": resp.headers["x-request-id"], "organization_id": org.id}
    assert REQ_ID.match(body["meta"]["request_id"])
    assert list(body)[-1] == "meta"


def test_request_ids_are_unique(org):
    ids = {org.get("/api/v2/me").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v2/nothing-here"), ("GET", "/"), ("DELETE", "/api/v2/me"),
    ("PUT", "/api/v2/api-keys"), ("GET", "/api/v2/agent-sessions"),
    ("GET", "/api/v2/optimizations/699ede80-c94b-4f98-9c79-dd3e07748703/variants/by-number/1/screenshot"),
])
def test_unknown_paths_and_methods_are_404(org, method, path):
    resp = org.request(method, path)
    assert_error(resp, 404, "not_found")
    assert "allow" not in resp.headers


@pytest.mark.parametrize("content,ctype,fragment", [
    (b"{not json", "application/json", "not valid JSON"),
    (b"[1, 2]", "application/json", "JSON object"),
    (b'"name"', "application/json", "JSON object"),
    (b'{"name": "x"}', "text/plain", "Content-Type"),
    (b'{"name": "x"}', "application/x-www-form-urlencoded", "Content-Type"),
    (b"", "application/json", "empty"),
])
def test_malformed_bodies_are_400(org, content, ctype, fragment):
    before = org.get("/api/v2/api-keys").json()["api_keys"]
    resp = org.post("/api/v2/api-keys", content=content, headers={"Content-Type": ctype})
    err = assert_error(resp, 400, "bad_request")
    assert fragment in err["message"]
    assert org.get("/api/v2/api-keys").json()["api_keys"] == before


def test_body_over_one_mib_is_400(org):
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    err = assert_error(org.post("/api/v2/api-keys", content=big,
                                headers={"Content-Type": "application/json"}),
                       400, "bad_request")
    assert "larger" in err["message"]


def test_validation_error_lists_every_field(org):
    resp = org.post("/api/v2/api-keys", json={"name": "", "extra": 1, "other": True})
    err = assert_error(resp, 422, "validation_error")
    fields = {f["field"]: f["code"] for f in err["details"]["fields"]}
    assert fields == {"name": "too_short", "extra": "unknown_field", "other": "unknown_field"}
    assert err["message"] == "3 fields are invalid"


def test_wrong_json_type_is_type_error(org):
    resp = org.post("/api/v2/api-keys", json={"name": 42})
    err = assert_error(resp, 422, "validation_error")
    assert err["details"]["fields"] == [{"field": "name", "code": "type",
                                         "message": err["details"]["fields"][0]["message"]}]


def test_internal_error_has_no_traceback_or_sql(org, monkeypatch, caplog):
    def boom(**_kw):
        raise RuntimeError("SELECT secret_hash FROM api_keys -- internal detail")

    monkeypatch.setattr(identity, "me", boom)
    with caplog.at_level(logging.ERROR, logger="levered_server.request"):
        resp = org.get("/api/v2/me")
    err = assert_error(resp, 500, "internal")
    assert "SELECT" not in resp.text and "Traceback" not in resp.text
    rid = resp.headers["x-request-id"]
    assert rid in err["message"]
    assert any(rid in r.getMessage() for r in caplog.records)


def test_request_id_appears_in_the_log(server, org, caplog):
    with caplog.at_level(logging.INFO, logger="levered_server.request"):
        resp = org.get("/api/v2/me")
    rid = resp.headers["x-request-id"]
    assert any(rid in r.getMessage() and org.id in r.getMessage() for r in caplog.records)


def test_openapi_document_is_served_with_every_route(server):
    doc = server.client.get("/openapi.json").json()
    paths = doc["paths"]
    assert "/api/v2/me" in paths and "/api/v2/api-keys" in paths
    op = paths["/api/v2/api-keys"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    assert doc["components"]["schemas"][name]["additionalProperties"] is False


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_rate_limit_api_bucket(tmp_path, backend):
    with database_url(backend) as url:
        settings = make_settings(tmp_path, url, rate_limit_per_minute=3)
        with running(settings, backend) as srv:
            org = new_org(srv)
            statuses = [org.get("/api/v2/me") for _ in range(4)]
            assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
            assert statuses[0].headers["x-ratelimit-limit"] == "3"
            assert statuses[2].headers["x-ratelimit-remaining"] == "0"
            err = assert_error(statuses[3], 429, "rate_limited")
            assert err["details"]["limit"] == 3 and err["details"]["window_seconds"] == 60
            assert int(statuses[3].headers["retry-after"]) >= 1
            # /healthz is never limited
            assert srv.client.get("/healthz").status_code == 200


def test_serve_bucket_and_trusted_proxies(tmp_path):
    from tests.server.factories import make_optimization

    settings = make_settings(tmp_path, None, serve_rate_limit_per_minute=2,
                             rate_limit_per_minute=50, trusted_proxies=("testclient",
                                                                        "127.0.0.0/8"))
    with running(settings, "sqlite") as srv:
        org = new_org(srv)
        opt = make_optimization(org)
        url = f"/api/v2/optimizations/{opt['id']}/serve"
        assert [srv.client.post(url).status_code for _ in range(3)] == [200, 200, 429]
        # the api bucket is separate
        assert org.get("/api/v2/me").status_code == 200
        # CORS preflight is never limited
        assert srv.client.options(url).status_code == 204
        # the TestClient peer ("testclient") is not an IP, so X-Forwarded-For is not trusted
        assert srv.client.post(url, headers={"X-Forwarded-For": "203.0.113.9"}).status_code \
            == 429


def test_client_ip_from_trusted_proxies():
    from levered_server.ratelimit import client_ip

    trusted = ("10.0.0.0/8",)
    assert client_ip("10.0.0.5", "203.0.113.9, 10.0.0.7", trusted) == "203.0.113.9"
    assert client_ip("198.51.100.1", "203.0.113.9", trusted) == "198.51.100.1"
    assert client_ip("10.0.0.5", None, trusted) == "10.0.0.5"
    assert client_ip("10.0.0.5", "203.0.113.9", ()) == "10.0.0.5"


def test_cors_origins_for_authenticated_endpoints(tmp_path):
    settings = make_settings(tmp_path, None, cors_origins=("https://app.example",))
    with running(settings, "sqlite") as srv:
        org = new_org(srv)
        ok = org.get("/api/v2/me", headers={"Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        other = org.get("/api/v2/me", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_by_default(org):
    resp = org.get("/api/v2/me", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in resp.headers


def test_nul_characters_are_refused_everywhere(org, server):
    # PostgreSQL cannot store NUL in text: refused on every backend alike (found by
    # the schemathesis run).
    err = assert_error(org.post("/api/v2/api-keys", json={"name": "a\x00b"}), 422,
                       "validation_error")
    assert err["details"]["fields"] == [{"field": "name", "code": "format",
                                         "message": "must not contain NUL characters"}]
    resp = server.client.post("/api/v2/optimizations/best-variant",
                              json={"optimization_id": "x", "context": {"k\x00": 1}})
    assert field_codes_of(resp) == {"context.k\x00": "format"}


def field_codes_of(resp):
    err = assert_error(resp, 422, "validation_error")
    return {f["field"]: f["code"] for f in err["details"]["fields"]}


@pytest.mark.parametrize("depth", [65, 900, 3000, 100_000])
@pytest.mark.parametrize("path", ["/api/v2/ingest/rewards", "/api/v2/optimizations/{id}/serve",
                                  "/api/v2/warehouse/metrics"])
def test_deeply_nested_bodies_are_400(org, path, depth):
    from tests.server.factories import make_optimization

    if "{id}" in path:
        path = path.format(id=make_optimization(org)["id"])
    headers = {"Content-Type": "application/json"}
    for body in ("[" * depth + "]" * depth,
                 '{"events": ' + "[" * depth + "]" * depth + "}"):
        err = assert_error(org.post(path, content=body, headers=headers), 400, "bad_request")
        assert err["message"] == "Request body is nested more than 64 levels deep." \
            or (body[0] == "[" and depth < 1000
                and err["message"] == "Request body must be a JSON object.")


def test_nesting_up_to_the_limit_is_parsed(org):
    body = '{"events": ' + "[" * 63 + "]" * 63 + "}"
    resp = org.post("/api/v2/ingest/rewards", content=body,
                    headers={"Content-Type": "application/json"})
    assert resp.status_code == 207, resp.text  # 64 levels: parsed, the event is rejected
    assert resp.json()["rejected"][0]["message"] == "an event must be an object"


def test_lone_surrogates_are_refused_like_nul(org, server):
    import json

    resp = org.post("/api/v2/api-keys", content=json.dumps({"name": "a\ud800b"}),
                    headers={"Content-Type": "application/json"})
    err = assert_error(resp, 422, "validation_error")
    assert err["details"]["fields"] == [
        {"field": "name", "code": "format",
         "message": "must be valid Unicode (no lone surrogates such as \\ud800)"}]
    resp = server.client.post("/api/v2/optimizations/best-variant",
                              content=json.dumps({"optimization_id": "x",
                                                  "context": {"k\udc00": 1}}),
                              headers={"Content-Type": "application/json"})
    assert field_codes_of(resp) == {"context.k\\udc00": "format"}
