"""Request ids, the replica header, the request log, rate limits and the last-resort 500
(pure ASGI)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect

from levered_server.clock import new_request_id
from levered_server.limits import TALLY
from levered_server.ratelimit import SlidingWindow, client_ip
from levered_server.replica import HEADER as REPLICA_HEADER
from levered_server.replica import replica_id
from levered_server.settings import Settings

log = logging.getLogger("levered_server.request")
SERVE_SUFFIX = "/serve"
BEST_VARIANT = "/api/v2/optimizations/best-variant"
BODY_TIMED_OUT = "levered_body_timed_out"  # set by protocol.py in the scope's state
CLIENT_CLOSED = 499  # in the request log: the client closed the connection first (nginx's)


def error_payload(request_id: str, code: str, message: str,
                  details: dict[str, Any] | None = None) -> bytes:
    """Render the error envelope (API.md 1.5)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return json.dumps({"error": body, "meta": {"request_id": request_id}}).encode()


def bucket_of(method: str, path: str) -> str | None:
    """Name the rate-limit bucket of a request, or None when it is not limited."""
    if method == "OPTIONS" or not (path.startswith("/api/") or path.startswith("/oauth/")):
        return None
    if path == BEST_VARIANT or (path.startswith("/api/v2/optimizations/")
                                and path.endswith(SERVE_SUFFIX)):
        return "serve"
    return "api"


class RequestContext:
    """Give each request an id (header, `meta`, log), say which replica answered (header),
    limit its rate, never leak a traceback."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        # Encoded once: every response, the serve fast path's too, passes through here.
        self.replica = (REPLICA_HEADER, replica_id(settings).encode())
        self.buckets = {"api": SlidingWindow(settings.rate_limit_per_minute),
                        "serve": SlidingWindow(settings.serve_rate_limit_per_minute)}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode()), self.replica]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        limited = self._limit(scope, extra)
        try:
            if limited is not None:
                await self._send_error(send_wrapper, 429, request_id, *limited)
            else:
                await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            # The client went away before its body arrived (or gave up waiting): nobody to
            # answer, nothing to fix; counted, logged once per interval (limits.py).
            if scope["state"].get(BODY_TIMED_OUT):  # the protocol answered 408 and closed
                status["code"] = 408
            else:
                status["code"] = CLIENT_CLOSED
                TALLY.add("disconnect")
        except Exception:  # noqa: BLE001 - the client gets an envelope, the log the traceback
            log.exception("unhandled error request_id=%s %s %s", request_id,
                          scope["method"], scope["path"])
            if not status["sent"]:
                await self._send_error(send_wrapper, 500, request_id, "internal",
                                       "Internal server error; nothing was changed. "
                                       f"Quote {request_id} when reporting it.", None, [])
        finally:
            if self.settings.access_log or status["code"] >= 500:
                state = scope.get("state", {})
                log.info("%s %s %s %d %.1fms org=%s request_id=%s", _ip(scope), scope["method"],
                         scope["path"], status["code"], (time.perf_counter() - started) * 1000,
                         state.get("organization_id", "-"), request_id)

    def _limit(self, scope: dict[str, Any], extra: list[tuple[bytes, bytes]]
               ) -> tuple[str, str, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        name = bucket_of(scope["method"], scope["path"])
        bucket = self.buckets.get(name or "")
        if bucket is None or bucket.limit <= 0:
            return None
        headers = dict(scope.get("headers", []))
        xff = headers.get(b"x-forwarded-for", b"").decode("latin-1") or None
        ip = client_ip(_ip(scope), xff, self.settings.trusted_proxies)
        allowed, remaining, reset = bucket.hit(f"{name}:{ip}")
        extra += [(b"x-ratelimit-limit", str(bucket.limit).encode()),
                  (b"x-ratelimit-remaining", str(remaining).encode()),
                  (b"x-ratelimit-reset", str(reset).encode())]
        if allowed:
            return None
        details = {"limit": bucket.limit, "window_seconds": 60, "retry_after": reset}
        return ("rate_limited", f"Too many requests; retry in {reset} s.", details,
                [(b"retry-after", str(reset).encode())])

    @staticmethod
    async def _send_error(send: Any, status: int, request_id: str, code: str, message: str,
                          details: dict[str, Any] | None,
                          headers: list[tuple[bytes, bytes]]) -> None:
        body = error_payload(request_id, code, message, details)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())] + headers})
        await send({"type": "http.response.body", "body": body})


def _ip(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"
