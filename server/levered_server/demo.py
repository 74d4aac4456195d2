"""The demo: a seeded organization and a traffic simulator with known true conversion rates.

`levered server start --demo` calls :func:`start`, which creates the organization ``Demo``,
its API key, a metric and two optimizations (a MAB and a CMAB with country and device
context) through the public API, then runs ``python -m levered_server.demo`` detached: a
simulator that serves visitors, draws their conversions from the true rates below and ingests
them as rewards, and asks for a training every 30 seconds. Everything goes through the public
API, exactly as a customer's site and backend would.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STATE_FILE = "demo.json"
ORG = "Demo"
METRIC = {"name": "Sign-ups", "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"},
          "sql": "SELECT anonymous_id, timestamp_utc FROM rewards WHERE name = 'signup' "
                 "AND timestamp_utc >= @start_date"}
PRICING = {"name": "Pricing page CTA", "model_type": "mab", "holdout_percentage": 10,
           "training_data_config": {"design_factors": [
               {"name": "cta_text", "levels": ["Start free trial", "Get started", "See plans"]}]}}
HERO = {"name": "Landing page hero", "model_type": "cmab", "holdout_percentage": 10,
        "training_data_config": {
            "design_factors": [{"name": "headline", "levels": ["Ship faster", "Build better", "Go live today"]},
                               {"name": "cta_text", "levels": ["Get started", "Try it free"]}],
            "context_factors": [{"name": "country", "levels": ["US", "DE", "FR"]},
                                {"name": "device_type", "levels": ["mobile", "desktop"]}]}}
#: True conversion rates: the simulator's ground truth, what the model should discover.
PRICING_RATES = {"Start free trial": 0.05, "Get started": 0.08, "See plans": 0.06}
HERO_BASE = 0.04
HERO_HEADLINE = {"Ship faster": 0.0, "Build better": 0.015, "Go live today": 0.005}
HERO_CTA = {"Get started": 0.0, "Try it free": 0.01}
HERO_MOBILE_BONUS = {"Go live today": 0.03}  # "Go live today" wins on mobile only


def true_rate(name: str, variant: dict[str, Any], context: dict[str, Any]) -> float:
    """The probability that a visitor shown ``variant`` in ``context`` signs up."""
    if name == PRICING["name"]:
        return PRICING_RATES[variant["cta_text"]]
    rate = HERO_BASE + HERO_HEADLINE[variant["headline"]] + HERO_CTA[variant["cta_text"]]
    if context.get("device_type") == "mobile":
        rate += HERO_MOBILE_BONUS.get(variant["headline"], 0.0)
    return rate


class Api:
    """A tiny keep-alive JSON client for the simulator (stdlib only)."""

    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.key = parts.hostname or "127.0.0.1", parts.port or 80, key
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; reconnect once if the connection dropped."""
        payload = None if body is None else json.dumps(body)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, payload, headers)
                response = self.conn.getresponse()
                return response.status, json.loads(response.read() or b"null")
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def seed(api: Api) -> dict[str, Any]:
    """Create the metric and the two optimizations unless they exist; return their IDs."""
    status, metrics = api.call("GET", "/api/v2/warehouse/metrics")
    metric = next((m for m in metrics.get("metrics", []) if m["name"] == METRIC["name"]), None)
    if metric is None:
        status, metric = api.call("POST", "/api/v2/warehouse/metrics", METRIC)
        if status != 201:
            raise RuntimeError(f"cannot create the demo metric: {metric}")
    _, listed = api.call("GET", "/api/v2/optimizations?limit=100")
    existing = {o["name"]: o for o in listed.get("optimizations", [])}
    optimizations = []
    for spec in (PRICING, HERO):
        found = existing.get(spec["name"])
        if found is None:
            status, found = api.call("POST", "/api/v2/optimizations", {**spec, "reward_metric_id": metric["id"]})
            if status != 201:
                raise RuntimeError(f"cannot create the demo optimization {spec['name']!r}: {found}")
        optimizations.append({"id": found["id"], "name": found["name"], "model_id": found.get("model_id"),
                              "contextual": spec is HERO})
    return {"metric": metric["name"], "metric_id": metric["id"], "optimizations": optimizations}


def server_env() -> dict[str, str]:
    """Settings for a demo server: no serve rate limit, training every minute."""
    return {**os.environ, "LEVERED_SERVE_RATE_LIMIT_PER_MINUTE": "0", "LEVERED_TRAIN_INTERVAL_MINUTES": "1",
            "LEVERED_MIN_TRAIN_OBSERVATIONS": "50"}


def demo_settings(settings: Any) -> Any:
    """`settings` of a demo server run in the foreground: what `server_env` sets."""
    return settings.replace(serve_rate_limit_per_minute=0, train_interval_minutes=1.0, min_train_observations=50)


def start_when_up(settings: Any, url: str, started: Callable[[dict[str, Any]], None], *,
                  wait: float = 120.0) -> threading.Thread:
    """Once the server at `url` answers, seed the demo and start its simulator (`start`), then
    call `started` with what was made; in a thread, for a server run in the foreground."""
    from levered_server.control import _healthy

    def run() -> None:
        deadline = time.monotonic() + wait
        while _healthy(url) is None:
            if time.monotonic() > deadline:
                sys.stderr.write(f"demo: the server did not answer at {url} within {wait:g} s; no demo\n")
                return
            time.sleep(0.2)
        try:
            started(start(settings, url))
        except Exception as exc:  # noqa: BLE001 - one line; the server keeps running
            sys.stderr.write(f"demo: could not seed the demo: {exc}\n")

    thread = threading.Thread(target=run, name="levered-demo-start", daemon=True)
    thread.start()
    return thread


def start(settings: Any, url: str) -> dict[str, Any]:
    """Seed the demo organization and start the simulator detached; return what was made."""
    from levered_server.bootstrap import create_api_key

    key = create_api_key(settings=settings, org_name=ORG, name="demo", create_org=True)["secret"]
    seeded = seed(Api(url, key))
    log = open(Path(settings.data_dir) / "demo.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen([sys.executable, "-m", "levered_server.demo", "--url", url, "--key", key],
                               stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    state = {"pid": process.pid, "url": url, "organization": ORG, "api_key": key, **seeded}
    (Path(settings.data_dir) / STATE_FILE).write_text(json.dumps(state, indent=2))
    return state


def stop(data_dir: Path) -> bool:
    """Stop the simulator of a data dir; return whether one was running."""
    path = Path(data_dir) / STATE_FILE
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return False
    path.unlink(missing_ok=True)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        return True
    return False


def _visitor(rng: random.Random) -> dict[str, str]:
    return {"country": rng.choice(["US", "US", "DE", "FR"]), "device_type": rng.choice(["mobile", "desktop"])}


def simulate(api: Api, rng: random.Random, rate_per_second: float, duration: float | None) -> None:
    """Serve visitors, convert them with the true rates, ingest rewards, train every 30 s."""
    optimizations = seed(api)["optimizations"]
    started = last_train = time.monotonic()
    pending: list[dict[str, Any]] = []
    visitor = 0
    while duration is None or time.monotonic() - started < duration:
        for opt in optimizations:
            visitor += 1
            context = _visitor(rng)  # every visitor has one; only the contextual model is told it
            body = {"anonymous_id": f"demo-{visitor}", **({"context": context} if opt["contextual"] else {})}
            status, served = api.call("POST", f"/api/v2/optimizations/{opt['id']}/serve", body)
            if status == 200 and rng.random() < true_rate(opt["name"], served["variant"], context):
                # Microseconds: a millisecond timestamp could fall before the exposure it follows.
                now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
                pending.append({"anonymous_id": served["anonymous_id"], "name": "signup", "timestamp": now})
        if len(pending) >= 20 or (pending and visitor % 200 == 0):
            api.call("POST", "/api/v2/ingest/rewards", {"events": pending[:500]})
            pending = pending[500:]
        if time.monotonic() - last_train > 30:
            for opt in optimizations:
                if opt.get("model_id"):
                    api.call("POST", f"/api/v2/models/{opt['model_id']}/train", {})
            last_train = time.monotonic()
        time.sleep(1.0 / rate_per_second)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until stopped (SIGTERM) or for ``--duration`` seconds."""
    parser = argparse.ArgumentParser(prog="python -m levered_server.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=float, default=10.0, help="visitor rounds per second (default 10)")
    parser.add_argument("--duration", type=float, help="seconds to run (default: until stopped)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    simulate(Api(args.url, args.key), random.Random(args.seed), args.rate, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
