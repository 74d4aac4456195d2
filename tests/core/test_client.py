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


# A request that was sent but not answered is not a server that cannot be reached (issue 15).

class RawServer:
    """A TCP server on 127.0.0.1 that reads each whole HTTP request, then does ``behaviour``:
    ``reset`` (TCP RST), ``close`` (FIN, no answer) or ``hang`` (no answer until the test ends)."""

    def __init__(self, behaviour: str) -> None:
        import socket
        import threading

        self.behaviour, self.requests = behaviour, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket
        import struct
        import threading

        while not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536) or b"\r\n\r\n"
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head.split(b"\r\n")[0].decode())
            if self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif self.behaviour == "close":
                conn.close()
            else:
                threading.Thread(target=lambda c=conn: (self.done.wait(), c.close()), daemon=True).start()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.listener.close()


@pytest.mark.parametrize("behaviour,reason", [("reset", "connection reset by the server or a proxy"),
                                              ("close", "the server closed the connection without answering")])
def test_a_post_whose_connection_is_lost_after_sending_may_have_been_applied(behaviour, reason):
    from levered_core.errors import NoResponse

    slept: list[float] = []
    with RawServer(behaviour) as raw, pytest.raises(NoResponse) as caught:
        client(raw.url, slept).post("/api/v2/warehouse/metrics", {"name": "x"})
    assert raw.requests == ["POST /api/v2/warehouse/metrics HTTP/1.1"] and slept == []  # never repeated
    error = caught.value
    assert error.maybe_applied and error.exit_code == ExitCode.ERROR
    assert str(error) == (f"the connection to {raw.url} was lost after POST /api/v2/warehouse/metrics was sent "
                          f"({reason}); it may have been applied on the server: check whether it was before retrying")
    assert str(error.check_with("levered metrics list")).endswith(
        "it may have been applied on the server: check with `levered metrics list` before retrying")


def test_a_post_that_times_out_may_have_been_applied_and_says_how_to_raise_the_limit():
    from levered_core.errors import NoResponse

    with RawServer("hang") as raw, pytest.raises(NoResponse) as caught:
        LeveredClient(raw.url, "tok", timeout=0.3, sleep=[].append).delete("/api/v2/models/m1")
    assert str(caught.value) == ("the request to DELETE /api/v2/models/m1 timed out after 0.3 s; it may have been "
                                 "applied on the server: check whether it was before retrying "
                                 "(raise the limit with `levered config set timeout SECONDS`)")
    assert isinstance(caught.value, ConnectionFailed)  # code catching network failures still does


def test_a_get_that_times_out_is_not_retried_and_does_not_say_cannot_reach():
    from levered_core.errors import NoResponse

    slept: list[float] = []
    with RawServer("hang") as raw, pytest.raises(NoResponse) as caught:
        LeveredClient(raw.url, "tok", timeout=0.3, sleep=slept.append).get("/api/v2/me", {"x": 1})
    assert len(raw.requests) == 1 and slept == []
    assert not caught.value.maybe_applied
    assert str(caught.value) == ("the request to GET /api/v2/me timed out after 0.3 s "
                                 "(raise the limit with `levered config set timeout SECONDS`)")


def test_a_get_whose_connection_is_lost_is_retried_as_before():
    from levered_core.errors import NoResponse

    slept: list[float] = []
    with RawServer("reset") as raw, pytest.raises(NoResponse) as caught:
        client(raw.url, slept).get("/api/v2/me")
    assert len(raw.requests) == 4 and slept == [0.5, 1.0, 2.0]
    assert str(caught.value) == (f"the connection to {raw.url} was lost after GET /api/v2/me was sent (connection "
                                 "reset by the server or a proxy), 4 attempts: try again")


def test_a_read_only_query_is_retried_and_never_may_have_been_applied():
    from levered_core.errors import NoResponse

    slept: list[float] = []
    with RawServer("reset") as raw, pytest.raises(NoResponse) as caught:
        client(raw.url, slept).warehouse.query("SELECT 1")
    assert len(raw.requests) == 4 and not caught.value.maybe_applied


def test_idempotent_posts_are_retried_on_503(stub_api):
    stub_api.add("POST", "/api/v2/exposures", 503, envelope_error("unavailable", "Nothing was written."),
                 {"Retry-After": "5"})
    stub_api.add("POST", "/api/v2/exposures", 200, {"accepted": 1})
    slept: list[float] = []
    assert client(stub_api.url, slept).post("/api/v2/exposures", {"exposures": []}, idempotent=True) == {"accepted": 1}
    assert slept == [5.0] and len(stub_api.requests) == 2


def test_a_post_answered_429_or_503_says_when_to_retry_in_one_line(stub_api):
    from levered_core.errors import ServerBusy

    stub_api.add("POST", "/a", 429, envelope_error("rate_limited", "Too many requests; retry in 7 s."),
                 {"Retry-After": "7"})
    stub_api.add("POST", "/b", 503, envelope_error("unavailable", "Nothing was written."), {"Retry-After": "5"})
    stub_api.add("POST", "/c", 503, b"<html>busy</html>")
    c = client(stub_api.url, [])
    said = []
    for path in ("/a", "/b", "/c"):
        with pytest.raises(ServerBusy) as caught:
            c.post(path, {})
        assert caught.value.exit_code == ExitCode.ERROR
        said.append(str(caught.value))
    assert said == ["Too many requests; retry in 7 s. (rate_limited, req_0123456789abcdef01234567)",
                    "Nothing was written. (unavailable, req_0123456789abcdef01234567); retry in 5 s",
                    "the server is busy: it answered 503 Service Unavailable (http_503)"]
    assert len(stub_api.requests) == 3


def test_a_get_still_busy_after_its_retries_says_so(stub_api):
    stub_api.add("GET", "/x", 429, envelope_error("rate_limited", "Slow down."), {"Retry-After": "3"})
    slept: list[float] = []
    with pytest.raises(APIError) as caught:
        client(stub_api.url, slept).get("/x")
    assert slept == [3.0, 3.0, 3.0]
    assert str(caught.value) == ("Slow down. (rate_limited, req_0123456789abcdef01234567); "
                                 "still rate limited after 4 attempts, retry in 3 s")
