"""A flood of large ingest batches, with the server's RSS sampled and serving timed meanwhile.

Used by the long fault test and runnable on its own for docs/benchmarks.md:

    python -m tests.faults.flood --port 3100 --key lvk_… --optimization <id> --pid <server pid>

The batches are sent by asyncio connections in this process; serving is timed from a
separate process (`probe`) so the senders do not slow the timer down.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

EVENT_PROPERTY_BYTES = 9_400  # 500 such events ≈ 4.8 MB, under the 5 MB limit


def batch(events: int = 500, tag: str = "f") -> bytes:
    """A rewards batch of `events` events of ~9.6 KB each."""
    stamp = "2026-01-01T00:00:00Z"
    return json.dumps({"events": [
        {"anonymous_id": f"{tag}-{i}", "name": "signup", "timestamp": stamp,
         "properties": {"note": "x" * EVENT_PROPERTY_BYTES}} for i in range(events)]}).encode()


def rss_mb(pid: int) -> float:
    """The resident set of a process (Linux), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1000
    return 0.0


@dataclasses.dataclass
class Flood:
    """What the batches got and what the server's RSS did."""

    statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    rss_before: float = 0.0
    rss_max: float = 0.0


async def _send(port: int, key: str, body: bytes, until: float, flood: Flood) -> None:
    head = (f"POST /api/v2/ingest/rewards HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + body)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 120)
            status = int(line.split()[1])
            writer.close()
        except (OSError, ValueError, IndexError, TimeoutError):
            status = 0
        flood.statuses[status] = flood.statuses.get(status, 0) + 1
        if status == 503:
            await asyncio.sleep(2.0)  # the Retry-After of the body budget


async def flood(port: int, key: str, *, senders: int, seconds: float, pid: int) -> Flood:
    """`senders` connections each sending batches back to back for `seconds`."""
    result = Flood(rss_before=rss_mb(pid))
    result.rss_max = result.rss_before
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result.rss_max = max(result.rss_max, rss_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    body = batch()
    until = time.monotonic() + seconds
    try:
        await asyncio.gather(*(_send(port, key, body, until, result) for _ in range(senders)))
    finally:
        stop.set()
        sampler.join()
    return result


def probe(port: int, key: str, optimization: str, seconds: float, rate: float) -> list[float]:
    """Serve new visitors on one kept-alive connection at `rate` per second; the latencies."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: list[float] = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        started = time.perf_counter()
        conn.request("POST", f"/api/v2/optimizations/{optimization}/serve",
                     json.dumps({"anonymous_id": f"p-{n}"}),
                     {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            times.append(time.perf_counter() - started)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0-1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("inf")


def run(port: int, key: str, optimization: str, pid: int, *, senders: int = 100,
        seconds: float = 20.0) -> dict[str, Any]:
    """Flood for `seconds` while a probe process times serving; a summary."""
    prober = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.flood", "probe", "--port", str(port), "--key", key,
         "--optimization", optimization, "--seconds", str(seconds)],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    result = asyncio.run(flood(port, key, senders=senders, seconds=seconds, pid=pid))
    out, _ = prober.communicate(timeout=seconds + 60)
    times = json.loads(out)
    return {"senders": senders, "seconds": seconds, "statuses": result.statuses,
            "rss_before_mb": round(result.rss_before), "rss_max_mb": round(result.rss_max),
            "serves": len(times), "serve_p50_ms": round(percentile(times, 0.5) * 1000, 1),
            "serve_p99_ms": round(percentile(times, 0.99) * 1000, 1),
            "serve_max_ms": round(max(times, default=float("inf")) * 1000, 1)}


def main() -> None:
    """`flood` (default) or `probe`, from the command line; prints JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("mode", nargs="?", default="flood", choices=["flood", "probe"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--optimization", required=True)
    p.add_argument("--pid", type=int)
    p.add_argument("--senders", type=int, default=100)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=50.0)
    args = p.parse_args()
    if args.mode == "probe":
        print(json.dumps(probe(args.port, args.key, args.optimization, args.seconds, args.rate)))
        return
    print(json.dumps(run(args.port, args.key, args.optimization, args.pid, senders=args.senders,
                         seconds=args.seconds)))


if __name__ == "__main__":
    main()
