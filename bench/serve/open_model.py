"""Serve latency at fixed rates (wrk2, open model) and max throughput (wrk), beside a bare app.

Starts `levered-server` (embedded default, or `--database-url` PostgreSQL, optionally
`--workers N`) with a `cmab` optimization of six variants and two context factors, and the
bare FastAPI reference (`bench/serve/bare_app.py`), one after the other (the bare app first,
each stopped before the next starts), and the durable bare reference (`bare_app.py
--durable-sqlite`, or on PostgreSQL `--database-url` with as many workers): each serve
committed before its answer, the least this stack costs for what Levered guarantees. For
each rate, wrk2 sends `POST …/serve` with a new anonymous id per request (with `--returning`,
the ids of an unmeasured run just before, whose users hold a sticky lock) at that fixed rate,
and reports latency from each request's scheduled send time (coordinated omission corrected);
then wrk measures each app's max throughput. Loopback only; the generator shares the machine's
cores. Prepends the run (with its date) to docs/benchmarks.md between the `serve-open` markers.

    python bench/serve/open_model.py --rates 500 1000 --seconds 20 [--training off] [--repeat 3]
        [--returning]

wrk2 is not packaged by Debian: `git clone https://github.com/giltene/wrk2 && make -C wrk2`,
then `--wrk2 wrk2/wrk` (default: `wrk2` on the PATH, else /tmp/wrk2/wrk). wrk: `apt-get install
wrk`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- serve-open:begin -->", "<!-- serve-open:end -->"
DURABLE = "bare FastAPI, durable"
_REFERENCE = {"bare FastAPI": "the bare app's", DURABLE: "the durable reference's"}
BEHIND = 0.99  # achieved / scheduled rate below which a run is marked (kept-up runs: 99.8 %)


def serve_script(countries: list[str], devices: list[str], prefix: str = "o") -> str:
    """A wrk/wrk2 Lua script: `POST` serve bodies with a new anonymous id per request, the
    context cycling through the given levels. The ids are `prefix`, a per-thread number and a
    counter: the thread number is the same in every wrk process (LuaJIT's `math.random` starts
    from the same seed), so only the prefix tells one run's users from another's
    (`script_file`)."""
    def lua_list(levels: list[str]) -> str:
        return "{" + ", ".join(f'"{v}"' for v in levels) + "}"

    return f"""
counter = 0
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1000000000)))
end
request = function()
  counter = counter + 1
  local c = ({lua_list(countries)})[counter % {len(countries)} + 1]
  local d = ({lua_list(devices)})[counter % {len(devices)} + 1]
  local body = '{{"anonymous_id":"{prefix}' .. tid .. '-' .. counter ..
    '","context":{{"country":"' .. c .. '","device_type":"' .. d .. '"}}}}'
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"""


COUNTRIES, DEVICES = ["US", "DE", "FR"], ["mobile", "desktop"]


def script_file(directory: pathlib.Path, countries: list[str] = COUNTRIES,
                devices: list[str] = DEVICES, prefix: str = "o") -> pathlib.Path:
    """Write a serve script whose anonymous ids no other run shares; return its path.

    Each wrk run needs its own: with one script for all of them, every run after the first
    (the measured run after its warm-up, each `--repeat`) served the users the runs before
    had locked already, returning users rather than new ones (until 2026-12-07)."""
    token = secrets.token_hex(4)
    path = directory / f"serve-{token}.lua"
    path.write_text(serve_script(countries, devices, f"{prefix}{token}-"))
    return path

DESIGN = {"name": "bench", "model_type": "cmab", "holdout_percentage": 10,
          "training_data_config": {
              "reward": {"name": "signup", "type": "bool"},
              "design_factors": [
                  {"name": "headline", "levels": ["Ship faster", "Build better", "Scale up"]},
                  {"name": "cta_text", "levels": ["Get started", "Try it free"]}],
              "context_factors": [{"name": "country", "levels": ["US", "DE", "FR"]},
                                  {"name": "device_type", "levels": ["mobile", "desktop"]}]}}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], log: pathlib.Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(log.read_text())
            time.sleep(0.1)


def _call(url: str, path: str, body: dict, key: str) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.loads(resp.read()))


def start_levered(tmp: pathlib.Path, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    """The real server and the serve URL of a fresh cmab optimization."""
    port = _free_port()
    exe = pathlib.Path(sys.executable).with_name("levered-server")
    env = {**os.environ, "LEVERED_HOME": str(tmp / "home"), "LEVERED_RATE_LIMIT_PER_MINUTE": "0",
           "LEVERED_SERVE_RATE_LIMIT_PER_MINUTE": "0", "LEVERED_ACCESS_LOG": "false",
           "LEVERED_TRAIN_EVERY_SERVES": "1000" if args.training == "on" else "0",
           "LEVERED_TRAIN_INTERVAL_MINUTES": "15" if args.training == "on" else "0",
           "LEVERED_MIN_TRAIN_OBSERVATIONS": "100", "OPENBLAS_NUM_THREADS": "1",
           "LEVERED_STALL_TRACE_MS": str(args.trace_stalls)}
    cmd = [str(exe), "--port", str(port), "--data-dir", str(tmp / "data")]
    if args.database_url:
        env.setdefault("LEVERED_SECRET_KEY", "bench-secret-key")
        cmd += ["--database-url", args.database_url]
    if args.workers > 1:
        cmd += ["--workers", str(args.workers)]
    log = tmp / "levered.log"
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/healthz", proc, log)
    from levered_server.bootstrap import create_api_key

    key = create_api_key(data_dir=tmp / "data", database_url=args.database_url)["secret"]
    metric = _call(url, "/api/v2/warehouse/metrics", {
        "name": "m", "sql": "SELECT anonymous_id, timestamp_utc FROM managed_dw.rewards "
                            "WHERE name = 'signup'",
        "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}}, key)
    opt = _call(url, "/api/v2/optimizations", {**DESIGN, "reward_metric_id": metric["id"]}, key)
    return proc, f"{url}/api/v2/optimizations/{opt['id']}/serve"


def start_bare(tmp: pathlib.Path, durable: bool = False, database_url: str | None = None,
               workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """The bare reference; `durable`, the one that commits each serve before its answer: to
    `database_url` (SQLAlchemy's form) with `workers` processes, else to SQLite."""
    port = _free_port()
    log = tmp / "bare.log"
    cmd = [sys.executable, str(ROOT / "bench" / "serve" / "bare_app.py"), "--port", str(port)]
    if durable and database_url:
        cmd += ["--database-url", database_url.replace("postgresql+psycopg://", "postgresql://"),
                "--workers", str(workers)]
    elif durable:
        cmd += ["--durable-sqlite"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/v2/optimizations/bench/serve"
    _wait(f"http://127.0.0.1:{port}/docs", proc, log)
    return proc, url


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def fixed_rate(wrk2: str, url: str, rate: int, seconds: int, script: pathlib.Path
               ) -> dict[str, float]:
    """wrk2 at `rate` req/s: p50, p99, p99.9, max (ms) and the rate achieved."""
    out = subprocess.run([wrk2, "-t2", "-c64", f"-d{seconds}s", f"-R{rate}", "--latency",
                          "-s", str(script), url], capture_output=True, text=True,
                         timeout=seconds + 120).stdout
    got: dict[str, float] = {}
    for label, pct in (("p50", "50.000"), ("p99", "99.000"), ("p99.9", "99.900"),
                       ("max", "100.000")):
        m = re.search(rf"^\s*{re.escape(pct)}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        got[label] = _ms(m.group(1), m.group(2)) if m else float("nan")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    got["achieved"] = float(m.group(1)) if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    got["errors"] = float(errors.group(1)) if errors else 0.0
    return got


def cpu_times() -> list[int]:
    """The machine's CPU times (`/proc/stat`: user nice system idle iowait irq softirq steal),
    or [] where there is none."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return []


def steal_share(before: list[int], after: list[int]) -> float:
    """The share of CPU time the hypervisor gave to other guests between two readings: a
    noisy host shows here, not in the server's numbers (nan without /proc/stat)."""
    if len(before) < 8 or len(after) < 8:
        return float("nan")
    delta = [b - a for a, b in zip(before[:8], after[:8], strict=True)]
    return delta[7] / max(sum(delta), 1)


def max_rate(url: str, seconds: int, script: pathlib.Path) -> float:
    """wrk (closed loop, 64 connections): the most requests/s answered."""
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rates", type=int, nargs="+", default=[500, 1000])
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="measure the rates N times per app (one table row each): on a shared "
                        "2-core machine one run in four or so falls behind for both apps")
    p.add_argument("--training", choices=["on", "off"], default="on",
                   help="automatic training (every 1,000 serves) on the server")
    p.add_argument("--database-url", help="PostgreSQL state (default: the embedded default)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--wrk2", default=shutil.which("wrk2") or "/tmp/wrk2/wrk")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--returning", action="store_true",
                   help="measure returning users: each measured run sends the ids of an "
                        "unmeasured run just before it (same rate and length), whose users "
                        "hold a sticky lock already")
    p.add_argument("--trace-stalls", type=float, default=0, metavar="MS",
                   help="have levered log event-loop stalls and serve commits over MS "
                        "(LEVERED_STALL_TRACE_MS) and summarize them after the run, with how "
                        "many of those commits overlapped an automatic training run")
    args = p.parse_args()
    if (not 1 <= args.seconds <= 120 or any(not 1 <= r <= 20000 for r in args.rates)
            or not 1 <= args.repeat <= 10):
        sys.exit("--seconds 1-120, --rates 1-20000 and --repeat 1-10")
    if not pathlib.Path(args.wrk2).exists() or shutil.which("wrk") is None:
        sys.exit("needs wrk2 (--wrk2 PATH; see the docstring) and wrk (apt-get install wrk)")
    rows: list[dict] = []
    if args.database_url:
        # A throwaway schema (and the lvdw_* databases its organizations get), dropped after.
        from tests.cluster import fresh_schema

        with fresh_schema(args.database_url, "lvbench_") as url:
            args.database_url = url
            top = _run(args, rows)
    else:
        top = _run(args, rows)
    _report(args, rows, top)


def _run(args: argparse.Namespace, rows: list[dict]) -> dict[str, float]:
    """Measure the bare app, then levered, each alone on the machine (the other stopped, so
    neither's background work, such as levered's training, lands in the other's numbers);
    fill `rows`, return the max throughputs."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        top: dict[str, float] = {}
        fixed_log = ""
        window = (dt.datetime.now(), dt.datetime.now())
        before = cpu_times()
        for name, start in (("bare FastAPI", lambda: start_bare(tmp)),
                            (DURABLE, lambda: start_bare(tmp, True, args.database_url,
                                                         args.workers)),
                            ("levered", lambda: start_levered(tmp, args))):
            proc, url = start()
            try:
                fixed_rate(args.wrk2, url, min(args.rates), 5, script_file(tmp))  # warm up
                measured = dt.datetime.now()
                for _ in range(args.repeat):
                    for rate in args.rates:
                        script = script_file(tmp)
                        if args.returning:  # serve its users once, unmeasured
                            fixed_rate(args.wrk2, url, rate, args.seconds, script)
                        rows.append({"app": name, "rate": rate,
                                     **fixed_rate(args.wrk2, url, rate, args.seconds, script)})
                if name == "levered":
                    fixed_log = (tmp / "levered.log").read_text(errors="replace")
                    window = (measured, dt.datetime.now())
                top[name] = max_rate(url, 10, script_file(tmp))
            finally:
                proc.terminate()
                proc.wait(30)
        top["steal"] = steal_share(before, cpu_times())
        if args.trace_stalls:
            summarize_stalls(fixed_log)
            summarize_training(fixed_log, *window)
    rows.sort(key=lambda row: row["app"] != "levered")  # levered's rows first in the table
    return top


def summarize_stalls(log: str) -> None:
    """Print how many stalls and slow commits levered logged at the fixed rates (and their
    warm-up), and where its busy threads were."""
    stalls = re.findall(r"event loop stalled (\d+) ms; threads: (.*)", log)
    commits = [float(ms) for ms in re.findall(r"serve commit of \d+ took (\d+) ms", log)]
    print(f"\nstalls over the threshold: {len(stalls)} (worst {max((int(s[0]) for s in stalls), default=0)} ms); "
          f"slow serve commits: {len(commits)} (worst {max(commits, default=0):.0f} ms)")
    where: dict[str, int] = {}
    for _ms, threads in stalls:
        for part in threads.split(" | "):
            name, _, frames = part.partition("] ")
            innermost = frames.split(" <- ")[0]
            if "wait" not in innermost and "select" not in innermost:  # busy, not parked
                key = f"{name}] {innermost}"
                where[key] = where.get(key, 0) + 1
    for key, n in sorted(where.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n:5d} × {key}")


_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "


def summarize_training(log: str, start: dt.datetime, end: dt.datetime) -> None:
    """Match the slow serve commits levered logged at the fixed rates (not the warm-up) to
    the automatic training runs they overlap, in any worker (`--trace-stalls` logs both)."""
    def when(stamp: str) -> dt.datetime:
        return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")

    def spans(pattern: str) -> list[tuple[dt.datetime, dt.datetime]]:
        # Each line is logged as the commit or run ends, with its duration in ms.
        out = []
        for stamp, ms in re.findall(_STAMP + pattern, log, re.M):
            ended = when(stamp)
            out.append((ended - dt.timedelta(milliseconds=float(ms)), ended))
        return [(a, b) for a, b in out if b >= start and a <= end]

    runs = spans(r".*automatic training of model \S+ ran (\d+) ms")
    commits = spans(r".*serve commit of \d+ took (\d+) ms")
    if not runs:
        return
    covered = sum((min(b, end) - max(a, start)).total_seconds() for a, b in runs)
    inside = sum(any(a <= rb and ra <= b for ra, rb in runs) for a, b in commits)
    print(f"automatic training runs: {len(runs)}, {covered / (end - start).total_seconds():.0%} "
          f"of the measured time; slow serve commits overlapping one: {inside} of "
          f"{len(commits)}")


def fell_behind(row: dict) -> bool:
    """Whether wrk2 sent under `BEHIND` of the requests the run scheduled."""
    return bool(row["achieved"] < BEHIND * row["rate"])


def p99_lines(rows: list[dict], rates: list[int]) -> list[str]:
    """Per rate, each app's median p99 over its runs that kept the schedule (over all its
    runs, marked, when none did), and levered's as a multiple of the references': the
    comparison a target should be stated in on a machine whose runs vary this much."""
    out = []
    for rate in rates:
        medians: dict[str, tuple[float, bool]] = {}
        for app in dict.fromkeys(r["app"] for r in rows):
            mine = [r for r in rows if r["app"] == app and r["rate"] == rate]
            kept = [r["p99"] for r in mine if not fell_behind(r)]
            values = kept or [r["p99"] for r in mine]
            if values:
                medians[app] = (statistics.median(values), not kept)
        if "levered" not in medians:
            continue
        apps = ", ".join(f"{app} {ms:.2f} ms{' †' if late else ''}"
                         for app, (ms, late) in medians.items())
        ratios = " and ".join(f"{medians['levered'][0] / ms:.2f}× {_REFERENCE.get(app, app)}"
                              for app, (ms, _) in medians.items() if app != "levered" and ms)
        none = " († none did)" if any(late for _, late in medians.values()) else ""
        out.append(f"Median p99 at {rate:,} req/s, over the runs that kept the schedule{none}: "
                   f"{apps}; levered at {ratios}.")
    return out


def _report(args: argparse.Namespace, rows: list[dict], top: dict[str, float]) -> None:
    layout = (f"PostgreSQL, {args.workers} worker(s)" if args.database_url
              else "embedded default (SQLite + DuckDB), 1 process")
    users = ("returning users (each measured run resends the ids of an unmeasured run just "
             "before it)" if args.returning else "a new anonymous id per request")
    durable = (f"to PostgreSQL before the answer (one statement per group of serves), "
               f"{args.workers} worker(s)" if args.database_url else
               "to SQLite before the answer (one transaction per event-loop turn, by the loop)")
    lines = [f"Run {dt.datetime.now().isoformat(timespec='minutes')} on {os.cpu_count()} cores "
             f"({platform.machine()}, Python {platform.python_version()}, load average before "
             f"{os.getloadavg()[0]:.2f}, CPU steal over the run {top['steal']:.1%}), levered: {layout}, automatic training {args.training}, "
             f"`cmab` 6 variants × 2 context factors, {users}, every "
             "exposure committed before the answer; bare FastAPI: in-memory policy, exposures "
             f"batched into SQLite after the answer, 1 process; bare FastAPI, durable: the same, but each serve's lock and exposure committed {durable}; each app measured alone. wrk2 -t2 -c64 -d{args.seconds}s per rate.",
             "", "| app | rate req/s | achieved | p50 ms | p99 ms | p99.9 ms | max ms | non-2xx |",
             "|---|---|---|---|---|---|---|---|"]
    behind = False
    for r in rows:
        # The generator sent fewer than it was asked to: on a 2-core machine shared with
        # it, this happens to either app about one run in four (docs/benchmarks.md).
        late = fell_behind(r)
        behind = behind or late
        lines.append(f"| {r['app']} | {r['rate']:,} | {r['achieved']:,.0f}{' †' if late else ''} | "
                     f"{r['p50']:.2f} | {r['p99']:.2f} | {r['p99.9']:.2f} | {r['max']:.1f} | "
                     f"{int(r['errors'])} |")
    if behind:
        lines += ["", f"† wrk2 sent under {BEHIND:.0%} of the scheduled requests in that run "
                      "(the generator fell behind; its latencies include that)."]
    lines += ["", *p99_lines(rows, args.rates)]
    durable_top = (f", bare FastAPI, durable {top[DURABLE]:,.0f} req/s "
                   f"({top['levered'] / top[DURABLE]:.0%} of it)")
    lines += ["", f"Max throughput (wrk -t2 -c64 -d10s): levered {top['levered']:,.0f} req/s, "
                  f"bare FastAPI {top['bare FastAPI']:,.0f} req/s "
                  f"({top['levered'] / top['bare FastAPI']:.0%} of bare){durable_top}."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        doc = DOC.read_text()
        if BEGIN not in doc:
            doc += (f"\n## Serving, open model (`bench/serve/open_model.py`)\n\n{BEGIN}\n{END}\n")
        head, rest = doc.split(BEGIN, 1)
        body, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{BEGIN}\n{text}\n\n{body.strip()}\n{END}{tail}")


if __name__ == "__main__":
    main()
