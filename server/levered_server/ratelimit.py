"""Sliding-window rate limits per client IP and bucket (API.md 1.7)."""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque

WINDOW = 60.0


class SlidingWindow:
    """At most `limit` requests per 60 s per key; `limit` 0 disables the bucket."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def hit(self, key: str) -> tuple[bool, int, int]:
        """Count a request; return (allowed, remaining, seconds until a slot frees)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_sweep > WINDOW:
                self._sweep(now)
            q = self._hits.setdefault(key, deque())
            while q and now - q[0] >= WINDOW:
                q.popleft()
            reset = max(1, math.ceil(WINDOW - (now - q[0]))) if q else 1
            if len(q) >= self.limit:
                return False, 0, reset
            q.append(now)
            return True, self.limit - len(q), reset

    def _sweep(self, now: float) -> None:
        # Drop idle clients so the table does not grow without bound.
        self._last_sweep = now
        for key in [k for k, q in self._hits.items() if not q or now - q[-1] >= WINDOW]:
            del self._hits[key]


def client_ip(peer: str | None, forwarded_for: str | None,
              trusted: tuple[str, ...]) -> str:
    """The TCP peer, or the last untrusted `X-Forwarded-For` hop behind trusted proxies."""
    ip = peer or "unknown"
    if not forwarded_for or not trusted or not _is_trusted(ip, trusted):
        return ip
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
        ip = hop
    return ip


def _is_trusted(ip: str, trusted: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for net in trusted:
        try:
            if addr in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False
