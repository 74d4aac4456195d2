"""Serve load benchmark: a fixed-rate, bounded, loopback-only load generator.

Starts `levered-server` on a free loopback port with a throwaway data dir (or uses
--url, which must be a loopback address), creates a metric and an optimization through
the public API, then sends POST /api/v2/optimizations/:id/serve at a fixed rate for a
fixed time over keep-alive connections. Latency is measured from each request's
*scheduled* send time, so a stalled server cannot hide its queueing (no coordinated
omission). Writes a table into docs/server.md between the bench markers.

    python bench/serve/run.py --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import pathlib
import platform
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from urllib.parse import urlsplit

MAX_SECONDS = 120
MAX_RATE = 5000
MAX_CONNECTIONS = 256
DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "server.md"
BEGIN, END = "<!-- bench/serve:begin -->", "<!-- bench/serve:end -->"


def _loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        sys.exit(f"refusing to load {host!r}: only loopback addresses are allowed")


def _call(url: str, method: str, path: str, body: dict | None, key: str | None) -> dict:
    req = urllib.request.Request(url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          **({"X-API-Key": key} if key else {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


CONTEXT_LEVELS = {"device": ["mobile", "desktop", "tablet"], "region": ["eu", "us", "apac"]}


def _context(i: int, with_context: bool) -> dict:
    """The context a user always sends (3 x 3 cells), or {} without --context."""
    if not with_context:
        return {}
    return {"device": CONTEXT_LEVELS["device"][i % 3],
            "region": CONTEXT_LEVELS["region"][(i // 3) % 3]}


def _design(binary_factors: int) -> list[dict]:
    if binary_factors:
        return [{"name": f"f{j}", "levels": ["a", "b"]} for j in range(binary_factors)]
    return [{"name": "headline", "levels": ["a", "b", "c"]},
            {"name": "cta", "levels": ["x", "y"]}]


def _setup(url: str, key: str, model_type: str = "mab", binary_factors: int = 0,
           with_context: bool = False) -> str:
    metric = _call(url, "POST", "/api/v2/warehouse/metrics", {
        "name": "bench", "sql": "SELECT anonymous_id, timestamp_utc FROM rewards",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}}, key)
    config: dict = {"design_factors": _design(binary_factors)}
    if with_context:
        config["context_factors"] = [{"name": n, "levels": lv}
                                     for n, lv in CONTEXT_LEVELS.items()]
    opt = _call(url, "POST", "/api/v2/optimizations", {
        "name": "bench", "model_type": model_type, "reward_metric_id": metric["id"],
        "holdout_percentage": 10, "training_data_config": config}, key)
    return str(opt["id"])


def _warm_and_train(url: str, key: str, opt_id: str, binary_factors: int,
                    with_context: bool, exposures: int) -> dict:
    """Ingest `exposures` random exposures (~3 % rewarded, through the public ingest API),
    then train the optimization's model once; returns the train result."""
    import random
    rng = random.Random(7)
    design = _design(binary_factors)
    events, rewards = [], []
    for i in range(exposures):
        user = f"warm-{i}"
        events.append({"anonymous_id": user, "optimization_id": opt_id,
                       "variant": {f["name"]: rng.choice(f["levels"]) for f in design},
                       "context": _context(i, with_context)})
        if rng.random() < 0.03:
            rewards.append({"anonymous_id": user, "name": "bench", "value": 1})
    for kind, batch in (("exposures", events), ("rewards", rewards)):
        for j in range(0, len(batch), 500):
            got = _call(url, "POST", f"/api/v2/ingest/{kind}", {"events": batch[j:j + 500]},
                        key)
            if got.get("rejected"):
                sys.exit(f"ingest of {kind} rejected events: {got['rejected'][:3]}")
    model_id = _call(url, "GET", f"/api/v2/optimizations/{opt_id}", None, key)["model_id"]
    req = urllib.request.Request(f"{url}/api/v2/models/{model_id}/train", method="POST",
                                 data=b"{}", headers={"Content-Type": "application/json",
                                                      "X-API-Key": key})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


async def _worker(host: str, port: int, path: str, queue: asyncio.Queue,
                  latencies: list[float], errors: list[int],
                  with_context: bool = False, timeline: list | None = None) -> None:
    timeline = timeline if timeline is not None else []
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            scheduled, user, ctx_i = item
            body = json.dumps({"anonymous_id": user,
                               "context": _context(ctx_i, with_context)}).encode()
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - scheduled)
            timeline.append((scheduled, latencies[-1]))
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _load(url: str, opt_id: str, rate: int, seconds: float, connections: int,
                users: int, with_context: bool = False) -> dict:
    parts = urlsplit(url)
    path = f"/api/v2/optimizations/{opt_id}/serve"
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    errors: list[int] = []
    timeline: list[tuple[float, float]] = []
    workers = [asyncio.create_task(_worker(parts.hostname, parts.port or 80, path, queue,
                                           latencies, errors, with_context, timeline))
               for _ in range(connections)]
    total = int(rate * seconds)
    load_before = os.getloadavg()[0]  # others' load on a shared box disturbs the tail
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, f"user-{i % users}", i % users))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    later = sorted(v for t, v in timeline if t >= start + 1.0)
    p99_after_1s = later[min(len(later) - 1, int(0.99 * len(later)))] * 1000 if later else 0.0
    return {"rate": rate, "seconds": seconds, "requests": len(lat), "errors": len(errors),
            "p99_after_first_s_ms": p99_after_1s,
            "achieved_rps": len(lat) / elapsed, "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99), "max_ms": lat[-1] * 1000,
            "mean_ms": statistics.fmean(lat) * 1000,
            "loadavg_1m_before": load_before, "loadavg_1m_after": os.getloadavg()[0]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_doc(rows: list[dict], note: str) -> None:
    table = ["| target req/s | achieved req/s | requests | errors | p50 ms | p90 ms | p99 ms "
             "| max ms |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['rate']} | {r['achieved_rps']:.0f} | {r['requests']} | "
                     f"{r['errors']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} |")
    block = "\n".join([BEGIN, note, "", *table, END])
    text = DOC.read_text() if DOC.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, nargs="+", default=[500])
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--users", type=int, default=20000, help="distinct anonymous ids")
    p.add_argument("--url", help="an already running server (loopback only)")
    p.add_argument("--key", help="API key for --url")
    p.add_argument("--no-doc", action="store_true", help="do not update docs/server.md")
    p.add_argument("--model-type", choices=["mab", "cmab"], default="mab")
    p.add_argument("--binary-factors", type=int, default=0,
                   help="design of N two-level factors (2^N variants) instead of 3 x 2")
    p.add_argument("--context", action="store_true",
                   help="context factors device x region (3 x 3); each user sends one cell")
    p.add_argument("--train-exposures", type=int, default=0,
                   help="ingest this many exposures (~3 %% rewarded) and train once before "
                        "the load, so a published version serves")
    args = p.parse_args()
    if args.seconds > MAX_SECONDS or max(args.rate) > MAX_RATE or \
            args.connections > MAX_CONNECTIONS or args.train_exposures > 200_000:
        sys.exit(f"bounded: --seconds ≤ {MAX_SECONDS}, --rate ≤ {MAX_RATE}, "
                 f"--connections ≤ {MAX_CONNECTIONS}, --train-exposures ≤ 200000")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "server"))
    from levered_server import control
    from levered_server.bootstrap import create_api_key
    from levered_server.settings import Settings

    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="levered-bench-"))
    started = False
    if args.url:
        _loopback(args.url)
        url, key = args.url.rstrip("/"), args.key
    else:
        os.environ.setdefault("LEVERED_SERVE_RATE_LIMIT_PER_MINUTE", "0")
        os.environ.setdefault("LEVERED_ACCESS_LOG", "false")
        if args.train_exposures:
            os.environ.setdefault("LEVERED_RATE_LIMIT_PER_MINUTE", "0")
        settings = Settings(data_dir=data_dir, port=_free_port())
        key = create_api_key(data_dir=data_dir, name="bench")["secret"]
        url = control.start_background(settings, env=dict(os.environ))["url"]
        started = True
    try:
        opt_id = _setup(url, key, args.model_type, args.binary_factors, args.context)
        if args.train_exposures:
            trained = _warm_and_train(url, key, opt_id, args.binary_factors, args.context,
                                      args.train_exposures)
            print(json.dumps({"trained": {k: trained.get(k) for k in
                                          ("status", "version", "observations")}}))
        rows = [asyncio.run(_load(url, opt_id, rate, args.seconds, args.connections,
                                  args.users, args.context)) for rate in args.rate]
    finally:
        if started:
            control.stop(data_dir)
    for r in rows:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}))
    policy = ("uniform policy" if not args.train_exposures else
              f"{args.model_type} policy trained once on {args.train_exposures} ingested "
              f"exposures")
    note = (f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores "
            f"({platform.machine()}, Python {platform.python_version()}), one uvicorn worker, "
            f"SQLite state store, embedded DuckDB, access log off, {args.connections} "
            f"keep-alive connections, {args.seconds:g} s per rate, {args.users} distinct users "
            f"(each user's first request writes its sticky lock), {policy}; the load "
            f"generator runs on the same machine.")
    if not args.no_doc:
        _write_doc(rows, note)


if __name__ == "__main__":
    main()
