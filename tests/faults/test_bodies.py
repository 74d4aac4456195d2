"""Bodies that are too large, cut off, too slow, or too many at once: a readable answer, never
a reset, a 500 or a traceback."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

from tests.faults.flood import batch
from tests.faults.server import launch, log_of

FAST = {"LEVERED_HEADER_TIMEOUT_SECONDS": "2", "LEVERED_BODY_TIMEOUT_SECONDS": "2",
        "LEVERED_BODY_BUDGET_MB": "1", "LEVERED_BODY_BUDGET_WAIT_SECONDS": "1"}
INGEST = "/api/v2/ingest/rewards"


def _headers(key: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **more}


def _envelope(data: bytes) -> dict:
    body = json.loads(data)
    assert set(body) == {"error", "meta"} and body["meta"]["request_id"].startswith("req_")
    return body["error"]


def test_bodies_that_go_wrong_get_an_answer(tmp_path):
    server, _ = launch(tmp_path, **FAST)
    try:
        too_big = batch(600)  # ~5.8 MB: over the 5 MB of a batch
        # urllib says Connection: close: the server closes once it answered, after reading
        # (and dropping) the rest of the body, so the 400 arrives instead of a reset.
        request = urllib.request.Request(server.url + INGEST, data=too_big, method="POST",
                                         headers=_headers(server.api_key))
        try:
            urllib.request.urlopen(request, timeout=30)
            raise AssertionError("a body over the limit was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400
            assert _envelope(exc.read())["message"] == "Request body is larger than 5000000 bytes."
        # Kept alive: the same connection serves the next request once the body is dropped.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("POST", INGEST, too_big, _headers(server.api_key))
        response = conn.getresponse()
        assert response.status == 400 and _envelope(response.read())["code"] == "bad_request"
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
        # Unauthenticated: answered before the body is read, and readable too.
        request = urllib.request.Request(server.url + INGEST, data=too_big, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=30)
        except urllib.error.HTTPError as exc:
            assert exc.code == 401 and _envelope(exc.read())["code"] == "unauthorized"

        # A client that goes away mid-body: nothing to answer, nothing to report but a count.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(f"POST {INGEST} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{server.api_key}\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100000\r\n\r\n{\"events\": [".encode())
            time.sleep(0.3)

        # A body slower than its deadline: 408 with the envelope, then the close.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(f"POST {INGEST} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{server.api_key}\r\nContent-Type: application/json\r\n"
                         "Content-Length: 1000\r\n\r\n{".encode())
            answer = _read_all(sock)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ") and _envelope(body)["code"] == "request_timeout"

        # The body budget (1 MB here) in use: a second large batch waits, then gets 503.
        holder = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        holder.sendall(f"POST {INGEST} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                       f"{server.api_key}\r\nContent-Type: application/json\r\n"
                       "Content-Length: 900000\r\n\r\n{".encode())
        time.sleep(0.3)
        status, error = server.api("POST", INGEST, json.loads(batch(90)))
        assert status == 503 and error["error"]["code"] == "unavailable", error
        holder.close()
        assert server.api("GET", "/healthz")[0] == 200
    finally:
        server.stop()
    text = log_of(server)
    assert "Traceback" not in text and "unhandled error" not in text
    assert " 500 " not in text
    assert "client(s) went away before their answer" in text  # counted, one line


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_lets_requests_in_flight_finish_and_exits_zero(tmp_path):
    server, optimization = launch(tmp_path)
    assert server.process is not None
    body = json.dumps({"events": [{"anonymous_id": "a", "name": "signup"}]}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"POST {INGEST} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.api_key}"
                 f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body[:10])
    time.sleep(0.3)
    server.process.terminate()
    time.sleep(0.5)
    # Stopping: new connections are refused, the request in flight is still being read.
    refused = threading.Event()
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    except OSError:
        refused.set()
    sock.sendall(body[10:])
    answer = _read_all(sock)
    sock.close()
    assert server.process.wait(30) == 0
    assert refused.is_set()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert b"connection: close" in answer.lower()
    assert "Traceback" not in log_of(server)
