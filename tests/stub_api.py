"""A scripted HTTP server on 127.0.0.1 for testing the client without the Levered server.

Each path has a queue of responses; the last one repeats. Every request is recorded with
its method, path, query, headers and body.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class StubAPI:
    """Context manager running the stub server on a free loopback port."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[tuple[int, Any, dict[str, str]]]] = {}
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                stub.requests.append({"method": self.command, "path": path, "query": query,
                                      "headers": dict(self.headers), "body": json.loads(raw) if raw else None})
                queue = stub.routes.get((self.command, path)) or [(404, {"error": {
                    "code": "not_found", "message": f"no route {path}"}, "meta": {"request_id": "req_stub"}}, {})]
                status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
                payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Queue one response for ``method path``."""
        self.routes.setdefault((method, path), []).append((status, body, headers or {}))

    def __enter__(self) -> StubAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def envelope_error(code: str, message: str, request_id: str = "req_0123456789abcdef01234567") -> dict[str, Any]:
    """Return an API.md 1.5 error envelope."""
    return {"error": {"code": code, "message": message}, "meta": {"request_id": request_id}}
