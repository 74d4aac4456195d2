"""The device flow keeps polling through a dropped connection (RFC 8628 3.5), against a real socket.

The token endpoint here is a tiny HTTP server on 127.0.0.1 that drops the first poll's
connection without answering (what a server closing an idle keep-alive connection looks like
to the client), answers `authorization_pending` to the second and issues a token on the third.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator

import pytest
import requests

from levered_core import oauth


class _TokenEndpoint(http.server.BaseHTTPRequestHandler):
    polls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/device":
            self._json(200, {"device_code": "dc", "user_code": "ABCD-EFGH", "interval": 5,
                             "verification_uri": "http://x/device", "expires_in": 600})
            return
        self.polls.append(self.path)
        if len(self.polls) == 1:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if len(self.polls) == 2:
            self._json(400, {"error": "authorization_pending"})
            return
        self._json(200, {"access_token": "lva_x", "refresh_token": "lvr_x", "expires_in": 3600,
                         "token_type": "Bearer"})

    def _json(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _TokenEndpoint.polls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_dropped_poll_backs_off_and_the_login_still_completes(endpoint: str) -> None:
    metadata = {"device_authorization_endpoint": f"{endpoint}/device", "token_endpoint": f"{endpoint}/token"}
    slept: list[float] = []
    out = io.StringIO()
    session = oauth.device_login(requests.Session(), endpoint, metadata, out=out, sleep=slept.append)
    assert session.session_token == "lva_x" and session.refresh_token == "lvr_x"
    assert len(_TokenEndpoint.polls) == 3
    # First poll after the server's interval, then doubled after the dropped connection.
    assert slept == [5.0, 10.0, 10.0]
    assert "ABCD-EFGH" in out.getvalue()
