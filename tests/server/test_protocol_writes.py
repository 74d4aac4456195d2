"""The server writes each whole answer in one `write` (head and body together), and every
other kind of answer as uvicorn does."""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from levered_server.protocol import GuardedProtocol


class Transport(asyncio.Transport):
    """Records what the protocol writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name,
                                                                                        default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _answer(app, request: bytes) -> list[bytes]:
    async def run() -> list[bytes]:
        config = Config(app=app, http=GuardedProtocol, log_level="warning")
        config.load()
        protocol = GuardedProtocol(config, ServerState(), {})
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(50):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    return asyncio.run(run())


GET = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


def test_a_whole_answer_is_one_write():
    async def app(scope, receive, send):
        body = b'{"ok":true}'
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    writes = _answer(app, GET)
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b'\r\n\r\n{"ok":true}')


def test_a_streamed_answer_is_written_as_uvicorn_writes_it():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    writes = _answer(app, GET)
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in writes[0]
    assert writes[0].endswith(b"\r\n\r\n")  # the head alone, then the chunks
    assert b"".join(writes[1:]) == b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n"


def test_a_head_answer_has_no_body():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b""})

    writes = _answer(app, b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b"".join(writes).endswith(b"content-length: 5\r\n\r\n")
