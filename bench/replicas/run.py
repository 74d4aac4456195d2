"""Serve throughput with 1, 2 and 3 replicas on one PostgreSQL behind HAProxy (loopback only).

For each replica count (and each `--workers` count, uvicorn workers per replica): start the replicas (tests/cluster.py: the production layout of
docs/server.md, PostgreSQL state and managed warehouse, one secret), create a `cmab`
optimization with two context factors, then drive `POST …/serve` through HAProxy with `wrk`
(closed loop: it measures the most the layout answers; every request a new anonymous id, so
each writes a sticky lock and an exposure, committed before the answer). The 1-replica row is
also measured without the balancer. Writes a table into docs/benchmarks.md between the
`replicas` markers, keeping earlier runs.

    python bench/replicas/run.py --seconds 15 --connections 64
    python bench/replicas/run.py --replicas 1 --workers 1 2    # one replica, 1 vs 2 workers

Needs PostgreSQL on 127.0.0.1:5432 (or LEVERED_TEST_POSTGRES_URL), haproxy and wrk
(`apt-get install haproxy wrk`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.serve.open_model import script_file  # noqa: E402 - after the path

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- replicas:begin -->", "<!-- replicas:end -->"


def _wrk(url: str, seconds: int, connections: int, script: pathlib.Path) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        if m:
            scale = {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
            lat[pct] = float(m.group(1)) * scale
    return {"rate": rate, "errors": float(non2xx.group(1)) if non2xx else 0.0,
            "p50": lat.get("50", float("nan")), "p99": lat.get("99", float("nan"))}


def measure(n: int, workers: int, seconds: int, connections: int,
            pg_url: str) -> list[dict[str, object]]:
    """Rows for `n` replicas of `workers` workers: through the balancer (and direct, for one
    replica)."""
    from tests.cluster import cluster
    from tests.server.factories import HERO, SIGNUP_SQL

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp, cluster(
            pathlib.Path(tmp), pg_url, n, LEVERED_TRAIN_EVERY_SERVES="0",
            LEVERED_TRAIN_INTERVAL_MINUTES="0", LEVERED_WORKERS=str(workers)) as c:
        _, metric, _ = c.api("POST", "/api/v2/warehouse/metrics", {
            "name": "m", "sql": SIGNUP_SQL,
            "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
        _, opt, _ = c.api("POST", "/api/v2/optimizations",
                          {**HERO, "reward_metric_id": metric["id"]})
        def script() -> pathlib.Path:
            return script_file(pathlib.Path(tmp), ["US", "DE"], ["mobile", "desktop", "desktop"],
                               prefix="b")

        path = f"/api/v2/optimizations/{opt['id']}/serve"
        targets = [("HAProxy", c.url)] + ([("direct", c.replicas[0].url)] if n == 1 else [])
        for via, base in targets:
            _wrk(base + path, 3, connections, script())  # warm up
            got = _wrk(base + path, seconds, connections, script())
            rows.append({"replicas": n, "workers": workers, "via": via, **got})
    return rows


def _table(rows: list[dict[str, object]], seconds: int, connections: int) -> str:
    first = [r for r in rows if r["replicas"] == 1 and r["workers"] == 1 and r["via"] == "HAProxy"]
    base = float((first or rows)[0]["rate"])  # type: ignore[arg-type]
    cores = os.cpu_count() or 1
    lines = [f"Run {dt.date.today().isoformat()} on {cores} cores ({platform.machine()}, "
             f"Python {platform.python_version()}), PostgreSQL state and managed warehouse, "
             f"`cmab` with two context factors (untrained: uniform), a new anonymous id per "
             f"request (each writes a lock and an exposure before it is answered), access log "
             f"off, `wrk -t2 -c{connections} -d{seconds}s` on the same machine; load average "
             f"{os.getloadavg()[0]:.1f} at the end (wrk, the servers and PostgreSQL count in it).",
             "",
             "| replicas | workers each | via | req/s | p50 ms | p99 ms | non-2xx | vs 1 process via HAProxy "
             "| per core used |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n, w = int(r["replicas"]), int(r["workers"])  # type: ignore[call-overload]
        rate = float(r["rate"])  # type: ignore[arg-type]
        per_core = rate / min(n * w, cores) / base
        lines.append(f"| {n} | {w} | {r['via']} | {rate:,.0f} | {float(r['p50']):.1f} | "  # type: ignore[arg-type]
                     f"{float(r['p99']):.1f} | {int(float(r['errors']))} | "  # type: ignore[arg-type]
                     f"{rate / base:.2f}× | {per_core:.2f} |")
    return "\n".join(lines)


def write_doc(text: str) -> None:
    """Prepend this run inside the markers, keeping earlier runs below it."""
    doc = DOC.read_text()
    if BEGIN not in doc:
        doc += ("\n## Replicas behind a load balancer (`bench/replicas/run.py`)\n\n"
                f"{BEGIN}\n{END}\n")
    head, rest = doc.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{body.strip()}\n{END}{tail}".replace("\n\n\n", "\n\n"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--workers", type=int, nargs="+", default=[1],
                   help="uvicorn workers per replica (LEVERED_WORKERS), each count measured")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--no-write", action="store_true", help="print, do not update the docs")
    args = p.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.connections <= 512:
        sys.exit("--seconds must be 1-120 and --connections 1-512")
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None and not pathlib.Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is not installed: apt-get install {tool}")
    from tests.pg import PG_URL

    if not PG_URL:
        sys.exit("PostgreSQL does not answer on 127.0.0.1:5432 (or set LEVERED_TEST_POSTGRES_URL)")
    rows = [row for n in args.replicas for w in args.workers
            for row in measure(n, w, args.seconds, args.connections, PG_URL)]
    text = _table(rows, args.seconds, args.connections)
    print(text)
    if not args.no_write:
        write_doc(text)


if __name__ == "__main__":
    main()
