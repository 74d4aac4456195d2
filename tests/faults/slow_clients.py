"""Slow clients against a server, and probes that time `/healthz` and a serve meanwhile.

Used by the fault tests (small counts) and runnable on its own for the numbers in
docs/benchmarks.md:

    python -m tests.faults.slow_clients --port 3100 --key lvk_… --optimization <id> \
        --headers 1000 --bodies 200 --seconds 40
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import time
from typing import Any


@dataclasses.dataclass
class Outcome:
    """What the slow clients saw and how the probes fared."""

    closed_by_server: int = 0
    answered_408: int = 0
    refused: int = 0
    probes: list[tuple[str, int, float]] = dataclasses.field(default_factory=list)

    def worst(self, kind: str) -> float:
        """The slowest probe of a kind (`healthz`, `serve`), in seconds (inf if any failed)."""
        times = [t if status == 200 else float("inf") for k, status, t in self.probes if k == kind]
        return max(times, default=float("inf"))

    def failed(self) -> list[tuple[str, int, float]]:
        """Probes that got no 200."""
        return [p for p in self.probes if p[1] != 200]


def raise_own_file_limit(needed: int) -> int:
    """Raise this process's soft file limit toward `needed`; return what it is now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def _trickle(port: int, head: bytes, drip: bytes, seconds: float, outcome: Outcome) -> None:
    """Open a connection, send `head`, then a byte of `drip` a second until the server
    closes the connection or `seconds` pass."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        outcome.refused += 1
        return
    try:
        writer.write(head)
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(4096), 1.0)
            except TimeoutError:
                writer.write(drip[i % len(drip):i % len(drip) + 1])
                i += 1
                continue
            if data.startswith(b"HTTP/1.1 408"):
                outcome.answered_408 += 1
            if data.startswith(b"HTTP/1.1 503"):
                outcome.refused += 1
            outcome.closed_by_server += 1
            return
    except OSError:
        outcome.closed_by_server += 1
    finally:
        writer.close()


async def _probe(port: int, kind: str, request: bytes, outcome: Outcome) -> None:
    started = time.monotonic()
    status = 0
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.write(request)
        line = await asyncio.wait_for(reader.readline(), 10)
        status = int(line.split()[1]) if line.startswith(b"HTTP/1.1") else 0
        writer.close()
    except (OSError, TimeoutError, ValueError, IndexError):
        status = 0
    outcome.probes.append((kind, status, time.monotonic() - started))


def serve_request(key: str, optimization: str, n: int) -> bytes:
    """A serve call (docs/api.md 7.1) for a new visitor, closing the connection."""
    body = json.dumps({"anonymous_id": f"probe-{n}"}).encode()
    return (f"POST /api/v2/optimizations/{optimization}/serve HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def run(port: int, *, headers: int, bodies: int, seconds: float, key: str = "",
              optimization: str | None = None, probe_every: float = 0.5) -> Outcome:
    """Hold `headers` header-trickling and `bodies` body-trickling connections for
    `seconds`, probing `/healthz` (and a serve, given an optimization) meanwhile."""
    outcome = Outcome()
    header_head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    body_head = (b"POST /api/v2/ingest/rewards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                 + key.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{")
    slow = []
    for i in range(headers + bodies):
        head, drip = (header_head, b"X-Slow: 1\r\n") if i < headers else (body_head, b" ")
        slow.append(asyncio.create_task(_trickle(port, head, drip, seconds, outcome)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # the listen backlog is finite
    probes = []
    deadline = time.monotonic() + seconds
    n = 0
    await asyncio.sleep(1.0)
    while time.monotonic() < deadline:
        n += 1
        probes.append(asyncio.create_task(_probe(
            port, "healthz", b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            outcome)))
        if optimization:
            probes.append(asyncio.create_task(_probe(
                port, "serve", serve_request(key, optimization, n), outcome)))
        await asyncio.sleep(probe_every)
    await asyncio.gather(*probes, *slow)
    return outcome


def main() -> None:
    """Run it from the command line and print a summary as JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", default="")
    p.add_argument("--optimization")
    p.add_argument("--headers", type=int, default=1000)
    p.add_argument("--bodies", type=int, default=200)
    p.add_argument("--seconds", type=float, default=40)
    args = p.parse_args()
    raise_own_file_limit(args.headers + args.bodies + 500)
    out = asyncio.run(run(args.port, headers=args.headers, bodies=args.bodies,
                          seconds=args.seconds, key=args.key, optimization=args.optimization))
    summary: dict[str, Any] = {
        "closed_by_server": out.closed_by_server, "answered_408": out.answered_408,
        "refused": out.refused, "probes": len(out.probes), "failed_probes": len(out.failed()),
        "worst_healthz_s": round(out.worst("healthz"), 3),
        "worst_serve_s": round(out.worst("serve"), 3) if args.optimization else None}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
