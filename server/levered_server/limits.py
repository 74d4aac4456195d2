"""The server's resource limits outside one request: the file limit, the budget of request
bodies in flight, and a bounded log of what the limits refused.

A hostile or broken client must not take the server down: too many connections are shed by
the protocol (`protocol.py`), bodies wait for or are refused a share of a fixed memory budget
(`BodyBudget`), and every kind of refusal is counted and logged once per interval
(`Tally`), never once per connection.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import logging
import math
import resource
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from levered_server.errors import Overloaded

log = logging.getLogger("levered_server.limits")
MB = 1000 * 1000
REPORT_SECONDS = 10.0
#: File descriptors kept free of connections (state and warehouse files, the log, pipes):
#: an eighth of the limit, 64 to 1,024; accept() must never fail for want of one.
FD_RESERVE_MIN, FD_RESERVE_MAX = 64, 1024


def raise_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; return the soft limit.

    A server holding many connections needs a descriptor for each; distributions default the
    soft limit to 1,024 while allowing far more. Workers inherit the raised limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def connection_cap(wanted: int, file_limit: int | None = None) -> int:
    """The connections this process may hold: `wanted`, at most the file limit less a reserve."""
    if file_limit is None:
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    reserve = min(max(file_limit // 8, FD_RESERVE_MIN), FD_RESERVE_MAX)
    return max(1, min(wanted, file_limit - reserve))


class Tally:
    """Counts of refused or cut-off work, logged as one line per kind per interval."""

    MESSAGES = {
        "evicted": "closed {n} idle connection(s) to make room over the cap of {cap} connections",
        "refused": "refused {n} connection(s) over the cap of {cap} connections "
                   "(none was idle; LEVERED_MAX_CONNECTIONS)",
        "busy": "answered {n} request(s) 503: {inflight} requests were in flight "
                "(LEVERED_MAX_REQUESTS_IN_FLIGHT)",
        "header_timeout": "closed {n} connection(s) that did not send their headers within "
                          "{header}s (LEVERED_HEADER_TIMEOUT_SECONDS)",
        "body_timeout": "answered {n} request(s) 408: the body did not arrive within {body}s "
                        "(LEVERED_BODY_TIMEOUT_SECONDS)",
        "drain_cut": "closed {n} connection(s) whose unread body exceeded the drain bound after "
                     "an early answer",
        "disconnect": "{n} client(s) went away before their answer",
        "budget": "answered {n} request(s) 503: the request-body budget of {budget} MB was in "
                  "use (LEVERED_BODY_BUDGET_MB)",
    }

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.facts: dict[str, Any] = {}
        self.since = time.monotonic()

    def add(self, kind: str, n: int = 1) -> None:
        """Count one more of `kind` (a key of `MESSAGES`)."""
        self.counts[kind] += n

    def report(self, now: float | None = None, *, force: bool = False) -> None:
        """Log what was counted if the interval is over (or `force`), then start a new one."""
        now = time.monotonic() if now is None else now
        if not force and now - self.since < REPORT_SECONDS:
            return
        seconds = max(now - self.since, 0.0)
        counts, self.counts, self.since = self.counts, Counter(), now
        for kind, n in counts.items():
            text = self.MESSAGES[kind].format(n=f"{n:,}", **self.facts)
            log.warning("%s in the last %.0f s", text, seconds)


TALLY = Tally()


class BodyBudget:
    """A server-wide budget of request-body bytes in flight (one event loop's).

    A request reserves its size before reading its body and holds it until its work is done;
    when the budget is used up it waits up to `wait` seconds, its body unread (the client is
    held back by TCP, which costs the server nothing), then gets `503 unavailable` with
    `Retry-After`. A request larger than the whole budget waits for all of it.
    """

    def __init__(self, capacity: int, wait: float = 10.0) -> None:
        self.capacity = capacity
        self.wait = wait
        self.used = 0
        self._freed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes of the budget for the `async with` block.

        :raises Overloaded: the bytes did not become free within `wait` seconds (503).
        """
        size = min(max(size, 0), self.capacity)
        if self.used + size > self.capacity:
            await self._wait_for(size)
        self.used += size
        try:
            yield
        finally:
            self.used -= size
            if self._freed is not None and self._loop is asyncio.get_running_loop():
                async with self._freed:
                    self._freed.notify_all()

    async def _wait_for(self, size: int) -> None:
        loop = asyncio.get_running_loop()
        if self._freed is None or self._loop is not loop:  # a condition belongs to one loop
            self._freed, self._loop = asyncio.Condition(), loop
        try:
            async with self._freed:
                await asyncio.wait_for(self._freed.wait_for(
                    lambda: self.used + size <= self.capacity), self.wait)
        except TimeoutError:
            TALLY.add("budget")
            raise Overloaded(
                "The server is receiving too many large request bodies at once; nothing was "
                "changed: retry after the Retry-After seconds.",
                headers={"Retry-After": "2"}) from None


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the protocol enforces on connections (from `Settings`, see `configure`)."""

    max_connections: int = 4096
    max_in_flight: int = 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    #: After an answer sent before the body was read: read and discard at most this much,
    #: for at most this long, so the client reads the answer instead of a reset; then close.
    drain_bytes: int = 16 * 1024 * 1024
    drain_seconds: float = 5.0


LIMITS = Limits()
BUDGET = BodyBudget(16 * MB)


def configure(settings: Any) -> Limits:
    """Apply the settings' limits to this process (before the server accepts connections).

    Raises the file limit, caps the connections under it, sizes the body budget.
    """
    global LIMITS, BUDGET
    file_limit = raise_file_limit()
    LIMITS = Limits(max_connections=connection_cap(settings.max_connections, file_limit),
                    max_in_flight=settings.max_requests_in_flight,
                    header_timeout=settings.header_timeout_seconds,
                    body_timeout=settings.body_timeout_seconds)
    BUDGET = BodyBudget(settings.body_budget_mb * MB, settings.body_budget_wait_seconds)
    if not TALLY.facts:  # what the last interval counted is logged at exit too
        atexit.register(TALLY.report, force=True)
    TALLY.facts = {"cap": f"{LIMITS.max_connections:,}", "inflight": f"{LIMITS.max_in_flight:,}",
                   "header": f"{LIMITS.header_timeout:g}", "body": f"{LIMITS.body_timeout:g}",
                   "budget": f"{settings.body_budget_mb:,}"}
    return LIMITS


class Throttle(logging.Filter):
    """Let one record per message per interval through a logger; count the rest.

    For the loggers of uvicorn and asyncio, which log per connection or per failed accept():
    the first record of a kind passes (with its traceback), the next ones within the interval
    are dropped, and the first one after it says how many were.
    """

    def __init__(self, interval: float = REPORT_SECONDS) -> None:
        super().__init__()
        self.interval = interval
        self.seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether `record` goes out (it may gain a count of the dropped ones)."""
        key = (record.name, str(record.msg))
        now = time.monotonic()
        start, dropped = self.seen.get(key, (-math.inf, 0))
        if now - start < self.interval:
            self.seen[key] = (start, dropped + 1)
            return False
        if len(self.seen) > 1000:  # messages that embed values: keep the table small
            self.seen.clear()
        self.seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} [{dropped:,} more like this in the last {now - start:.0f} s]"
            record.exc_info = None
            record.exc_text = None
        return True


THROTTLED_LOGGERS = ("uvicorn.error", "asyncio")


def throttle_logs() -> None:
    """Bound what uvicorn and asyncio log per connection (idempotent)."""
    for name in THROTTLED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, Throttle) for f in logger.filters):
            logger.addFilter(Throttle())
