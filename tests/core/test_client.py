"""LeveredClient against a real HTTP server on 127.0.0.1: retries, errors, headers."""

from __future__ import annotations

import pytest

from levered_core.client import LeveredClient
from levered_core.errors import APIError, ConnectionFailed, ExitCode, NotAuthenticated, NotFound, Unauthorized
from tests.stub_api import envelope_error


def client(url: str, slept: list[float], token: str | None = "tok") -> LeveredClient:
    return LeveredClient(url, token, timeout=5, sleep=slept.append)


def test_get_retries_503_with_exponential_backoff(stub_api):
    for _ in range(3):
        stub_api.add("GET", "/api/v2/models", 503, envelope_error("unavailable", "Try again."))
    stub_api.add("GET", "/api/v2/models", 200, {"models": []})
    slept: list[float] = []
    assert client(stub_api.url, slept).get("/api/v2/models") == {"models": []}
    assert slept == [0.5, 1.0, 2.0]
    assert len(stub_api.requests) == 4


def test_get_gives_up_after_three_retries(stub_api):
    stub_api.add("GET", "/x", 503, envelope_error("unavailable", "Still down."))
    slept: list[float] = []
    with pytest.raises(APIError) as caught:
        client(stub_api.url, slept).get("/x")
    assert caught.value.status == 503 and len(stub_api.requests) == 4


def test_429_waits_for_retry_after(stub_api):
    stub_api.add("GET", "/x", 429, envelope_error("rate_limited", "Slow down."), {"Retry-After": "7"})
    stub_api.add("GET", "/x", 200, {"ok": True})
    slept: list[float] = []
    assert client(stub_api.url, slept).get("/x") == {"ok": True}
    assert slept == [7.0]


def test_post_is_never_retried(stub_api):
    stub_api.add("POST", "/api/v2/optimizations", 503, envelope_error("unavailable", "Try again."))
    slept: list[float] = []
    with pytest.raises(APIError) as caught:
        client(stub_api.url, slept).post("/api/v2/optimizations", {"name": "x"})
    assert len(stub_api.requests) == 1 and slept == []
    assert stub_api.requests[0]["body"] == {"name": "x"}
    assert str(caught.value) == "Try again. (unavailable, req_0123456789abcdef01234567)"


def test_connection_errors_are_retried_for_get_then_reported_with_the_url():
    slept: list[float] = []
    with pytest.raises(ConnectionFailed) as caught:
        client("http://127.0.0.1:9", slept).get("/healthz")
    assert slept == [0.5, 1.0, 2.0]
    assert str(caught.value).startswith("cannot reach http://127.0.0.1:9: ")


def test_error_statuses_map_to_exit_codes(stub_api):
    stub_api.add("GET", "/missing", 404, envelope_error("not_found", "Nothing here."))
    stub_api.add("GET", "/secret", 401, envelope_error("unauthorized", "Not authenticated"))
    stub_api.add("GET", "/bad", 422, {"error": {"code": "validation_error", "message": "1 field is invalid",
                                                "details": {"fields": [{"field": "name"}]}}})
    c = client(stub_api.url, [])
    with pytest.raises(NotFound) as missing:
        c.get("/missing")
    assert missing.value.exit_code == ExitCode.NOT_FOUND
    with pytest.raises(Unauthorized) as secret:
        c.get("/secret")
    assert secret.value.exit_code == ExitCode.NOT_AUTHENTICATED
    with pytest.raises(APIError) as bad:
        c.get("/bad")
    assert bad.value.exit_code == ExitCode.ERROR and bad.value.details == {"fields": [{"field": "name"}]}
    assert bad.value.request_id is None


def test_request_id_falls_back_to_the_header(stub_api):
    stub_api.add("GET", "/x", 500, {"error": {"code": "internal", "message": "Bug."}}, {"X-Request-Id": "req_h"})
    with pytest.raises(APIError) as caught:
        client(stub_api.url, []).get("/x")
    assert str(caught.value) == "Bug. (internal, req_h)"


def test_non_json_error_bodies_still_give_one_line(stub_api):
    stub_api.add("GET", "/x", 502, b"<html>Bad gateway</html>")
    with pytest.raises(APIError) as caught:
        client(stub_api.url, []).get("/x")
    assert str(caught.value) == "the server answered 502 Bad Gateway (http_502)"


def test_no_token_fails_before_sending(stub_api):
    with pytest.raises(NotAuthenticated):
        client(stub_api.url, [], token=None).get("/api/v2/me")
    assert stub_api.requests == []


def test_query_parameters_and_path_segments_are_encoded(stub_api):
    stub_api.add("GET", "/api/v2/warehouse/tables/my%20table/columns", 200, {"columns": []})
    c = client(stub_api.url, [])
    c.get(c.url("/api/v2/warehouse/tables", "my table") + "/columns", {"include_archived": True, "x": None})
    assert stub_api.requests[0]["query"] == "include_archived=true"


def test_a_401_to_the_levered_api_key_blames_the_key_not_the_login(stub_api, monkeypatch):
    from levered_core.errors import ApiKeyRefused

    stub_api.add("GET", "/api/v2/me", 401, envelope_error("unauthorized", "Invalid, expired or revoked credential."))
    monkeypatch.setenv("LEVERED_API_KEY", "lvk_revoked")
    with pytest.raises(ApiKeyRefused) as caught:
        client(stub_api.url, [], token="lvk_revoked").get("/api/v2/me")
    assert caught.value.exit_code == ExitCode.NOT_AUTHENTICATED and caught.value.status == 401
    assert str(caught.value).startswith("Not authenticated: the API key in LEVERED_API_KEY was refused "
                                        "(invalid or revoked); create a new key, or unset it and run `levered login` (")
    with pytest.raises(Unauthorized) as other:  # a session token: the login is what to fix
        client(stub_api.url, [], token="lva_session").get("/api/v2/me")
    assert not isinstance(other.value, ApiKeyRefused) and "run `levered login`" in str(other.value)
