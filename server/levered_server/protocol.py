"""uvicorn's httptools protocol with the limits slow or careless clients need.

uvicorn bounds idle kept-alive connections but not a client that trickles its headers or its
body, nor the number of connections. This protocol adds, per connection and without a timer
per request (one sweep a second looks at every connection):

- a deadline for the headers (`header_timeout`, from the connection or the end of the last
  answer) and for the whole request (`body_timeout`, not counting time the server itself
  stopped reading): past it the client gets `408` and the connection is closed;
- a cap on connections: over it, the connection idle longest (kept alive or still sending
  headers) is closed to make room, else the new one is refused;
- a cap on requests in flight: over it a request is answered `503` at once;
- an answer sent before the body was read (`400` too large, `401`, `503`…) is followed by
  reading and discarding the rest, bounded, before the close, so the client reads the answer
  instead of a connection reset.

Every refusal is counted in `limits.TALLY`, logged once per kind per interval.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from levered_server import limits
from levered_server.clock import new_request_id
from levered_server.limits import TALLY
from levered_server.middleware import BODY_TIMED_OUT, error_payload

IDLE, HEADERS, BODY, APP = 0, 1, 2, 3
SWEEP_SECONDS = 1.0


def raw_answer(status: int, reason: str, code: str, message: str,
               headers: bytes = b"") -> bytes:
    """A complete HTTP/1.1 error answer with the envelope (docs/api.md 1.5), closing."""
    body = error_payload(new_request_id(), code, message)
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n%s\r\n" % (status, reason.encode(), len(body), headers)) + body


async def _busy(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI app of a request over the in-flight cap: 503, retry in a second."""
    body = error_payload(new_request_id(), "unavailable",
                         "The server has too many requests in flight; nothing was changed: "
                         "retry after the Retry-After seconds.")
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """What the connections of one server share: the idle ones, oldest first, and the sweep."""

    def __init__(self, loop: asyncio.AbstractEventLoop, state: ServerState) -> None:
        self.loop = loop
        self.connections = state.connections
        #: Connections that may be closed to make room (insertion order = idle the longest).
        self.idle: dict[GuardedProtocol, None] = {}
        loop.call_later(SWEEP_SECONDS, self.sweep)

    @classmethod
    def of(cls, state: ServerState, loop: asyncio.AbstractEventLoop) -> Guard:
        """The guard of a server (made with its first connection)."""
        guard: Guard | None = getattr(state, "levered_guard", None)
        if guard is None:
            guard = cls(loop, state)
            state.levered_guard = guard  # type: ignore[attr-defined]
        return guard

    def sweep(self) -> None:
        """Close the connections past a deadline; report the tallies; again in a second."""
        try:
            now = self.loop.time()
            for connection in list(self.connections):
                if isinstance(connection, GuardedProtocol):
                    connection.check(now)
            TALLY.report()
        finally:
            self.loop.call_later(SWEEP_SECONDS, self.sweep)


class _Transport:
    """The transport as the protocol's request cycles see it: a close right after an answer
    sent before the body was read drains the body first (`GuardedProtocol.drain`)."""

    def __init__(self, raw: asyncio.Transport, protocol: GuardedProtocol) -> None:
        self.raw = raw
        self.protocol = protocol
        # Bound methods, called directly: no indirection on the write path.
        self.write = raw.write
        self.writelines = raw.writelines
        self.get_extra_info = raw.get_extra_info
        self.pause_reading = raw.pause_reading
        self.resume_reading = raw.resume_reading
        self.abort = raw.abort
        self.set_protocol = raw.set_protocol
        self.get_protocol = raw.get_protocol
        self.get_write_buffer_size = raw.get_write_buffer_size

    def is_closing(self) -> bool:
        """Closing, or draining before the close."""
        return self.protocol.draining or self.raw.is_closing()

    def close(self) -> None:
        """Close, unless the answer went out before the body was read: then drain first."""
        protocol, cycle = self.protocol, self.protocol.cycle
        if (protocol.phase == BODY and not protocol.draining and not protocol.lost
                and cycle is not None and cycle.response_complete and not cycle.disconnected):
            protocol.drain(close_after=True)
            return
        self.raw.close()


class _Collect:
    """Stands in for the transport while uvicorn writes a response's head: keeps the bytes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.write = self.parts.append


class CoalescingCycle(RequestResponseCycle):
    """uvicorn's request cycle, writing a response's head and whole body in one `write`.

    uvicorn writes the status line and headers, then the body: two system calls and two TCP
    segments per answer, the first of which the client must read before the second. A
    response whose body comes in one message (every JSON answer here, the serve's
    included) goes out as one. Anything else (streamed or chunked bodies, HEAD, a client
    gone) is written as uvicorn writes it.
    """

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        if (message["type"] == "http.response.start" and not self.response_started
                and not self.disconnected):
            transport, collect = self.transport, _Collect()
            self.transport = collect  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            self._head = b"".join(collect.parts)
            return
        head = self._head
        if head is None:
            await super().send(message)
            return
        self._head = None
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()  # as uvicorn waits before each write
        body = message.get("body", b"") if message["type"] == "http.response.body" else b""
        if (message["type"] == "http.response.body" and not message.get("more_body", False)
                and self.chunked_encoding is False and self.scope["method"] != "HEAD"
                and len(body) == self.expected_content_length and not self.disconnected):
            self.transport.write(head + body)
            self.expected_content_length = 0
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
            return
        if not self.disconnected:
            self.transport.write(head)
        await super().send(message)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, caps and draining (see the module)."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits.LIMITS
        self.guard = Guard.of(server_state, self.loop)
        self.phase = HEADERS
        self.since = 0.0  # when the current phase's deadline started
        self.draining = False
        self.close_after_drain = False
        self.drain_left = 0
        self.lost = False
        self.raw: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.raw = transport
        self.transport = _Transport(transport, self)  # type: ignore[assignment]
        self.since = self.loop.time()
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            return
        self.guard.idle[self] = None

    def _make_room(self) -> bool:
        """Close the connection idle the longest; refuse this one if none is idle."""
        victim = next(iter(self.guard.idle), None)
        if victim is not None:
            TALLY.add("evicted")
            victim.close_now()
            return True
        TALLY.add("refused")
        assert self.raw is not None
        self.raw.write(raw_answer(503, "Service Unavailable", "unavailable",
                                  "The server has too many connections; retry shortly.",
                                  b"retry-after: 1\r\n"))
        self.close_now()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.guard.idle.pop(self, None)
        super().connection_lost(exc)

    def close_now(self) -> None:
        """Close the connection (no draining)."""
        self.guard.idle.pop(self, None)
        if self.raw is not None:
            self.raw.close()

    def data_received(self, data: bytes) -> None:
        if self.draining:
            self.drain_left -= len(data)
            if self.drain_left < 0:
                TALLY.add("drain_cut")
                self.close_now()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.phase == IDLE:
            self.phase = HEADERS
            self.since = self.loop.time()

    def on_headers_complete(self) -> None:
        if self.draining or self.raw is None or self.raw.is_closing():
            return  # a request pipelined behind one whose connection is closing
        self.guard.idle.pop(self, None)
        self.phase = BODY
        if len(self.tasks) >= self.limits.max_in_flight:
            TALLY.add("busy")
            app, self.app = self.app, _busy
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # The same cycle, writing each answer in one piece (`CoalescingCycle`): set here, as
        # uvicorn builds the cycle inside `on_headers_complete`.
        cycle.__class__ = CoalescingCycle
        super()._start_asgi_task(cycle, app)

    def on_message_complete(self) -> None:
        if self.draining:  # the rest of a body answered early is read: the connection is in step
            self.draining = False
            if self.close_after_drain:
                self.close_now()
            else:
                self.phase = APP
                self.on_response_complete()
            return
        self.phase = APP
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.draining:  # the close after the answer waits for the body (`_Transport.close`)
            self.server_state.total_requests += 1
            return
        if self.phase == BODY and not self.lost:
            self.drain(close_after=False)  # answered before the body was read, kept alive
            return
        self.phase = IDLE
        if self.raw is not None and not self.raw.is_closing():
            self.guard.idle[self] = None
        super().on_response_complete()

    def drain(self, *, close_after: bool) -> None:
        """Read and discard the rest of the body (bounded in bytes and time); then close the
        connection (`close_after`) or go on with the next request."""
        self.draining = True
        self.close_after_drain = close_after
        self.drain_left = self.limits.drain_bytes
        self.since = self.loop.time()
        self.guard.idle.pop(self, None)
        self.flow.resume_reading()

    def check(self, now: float) -> None:
        """Close this connection if it is past its phase's deadline (the sweep calls this)."""
        if self.lost:
            return
        if self.draining:
            if now - self.since > self.limits.drain_seconds:
                TALLY.add("drain_cut")
                self.close_now()
        elif self.phase == HEADERS:
            if now - self.since > self.limits.header_timeout:
                TALLY.add("header_timeout")
                self._answer_timeout("The request headers did not arrive in time.")
        elif self.phase == BODY:
            if self.flow.read_paused:
                self.since = now  # the server stopped reading, not the client
            elif now - self.since > self.limits.body_timeout:
                TALLY.add("body_timeout")
                self._answer_timeout("The request body did not arrive in time.")

    def _answer_timeout(self, message: str) -> None:
        assert self.raw is not None
        if self.phase == BODY and self.cycle is not None:
            # The app then sees the client go away; this says it did not (middleware.py).
            self.cycle.scope["state"][BODY_TIMED_OUT] = True
        if self.cycle is None or not self.cycle.response_started or self.phase == HEADERS:
            self.raw.write(raw_answer(408, "Request Timeout", "request_timeout",
                                      f"{message} Send the whole request at once; nothing was "
                                      "changed."))
        self.close_now()
