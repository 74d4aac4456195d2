"""Three real replicas on one PostgreSQL behind a real HAProxy; one is `kill -9`ed under load.

Bounded mixed load through the balancer (serves of 300 returning users, reward batches, one
training race), then the checks of the scale-out layout (docs/server.md): no acknowledged
exposure or reward missing, no user shown two variants, stored locks agree with what users
were shown, one training per version, and the surviving replicas keep serving.
"""

from __future__ import annotations

import collections
import concurrent.futures
import http.client
import json
import random
import threading
import time
from typing import Any

import pytest

from tests.cluster import HAPROXY, cluster, pg_exec
from tests.pg import PG_URL
from tests.server.factories import HERO, SIGNUP_SQL

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="PostgreSQL does not answer on 127.0.0.1:5432"),
    pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (.ci/run installs it)"),
]
USERS = 300
VISITS = 6
THREADS = 6
BATCH = 25  # rewards per ingest call


class Client:
    """One keep-alive connection to the balancer."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)

    def post(self, path: str, body: Any, auth: bool = False) -> tuple[int, Any, str]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            self.conn.request("POST", path, json.dumps(body), headers)
            resp = self.conn.getresponse()
            data = resp.read()
            replica = resp.getheader("X-Levered-Replica", "")
            try:
                body = json.loads(data) if data else None
            except ValueError:  # the balancer's own error page (502/503 while a replica dies)
                body = None
            return resp.status, body, replica
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            return 0, None, ""


def _work() -> list[tuple[str, int]]:
    """Serves (each user VISITS times, shuffled) with a reward batch every 40 serves."""
    rng = random.Random(7)
    serves = [("serve", u) for u in range(USERS) for _ in range(VISITS)]
    rng.shuffle(serves)
    out: list[tuple[str, int]] = []
    for i, item in enumerate(serves):
        out.append(item)
        if i % 40 == 39:
            out.append(("rewards", i))
    return out


def test_three_replicas_kill_one_under_load(tmp_path):
    with cluster(tmp_path, PG_URL, 3, LEVERED_TRAIN_EVERY_SERVES="0",
                 LEVERED_TRAIN_INTERVAL_MINUTES="0") as c:
        status, metric, _ = c.api("POST", "/api/v2/warehouse/metrics", {
            "name": "signups", "sql": SIGNUP_SQL,
            "column_mapping": {"anonymous_id": "anonymous_id", "timestamp": "timestamp_utc"}})
        assert status == 201, metric
        status, opt, _ = c.api("POST", "/api/v2/optimizations",
                               {**HERO, "reward_metric_id": metric["id"]})
        assert status == 201, opt
        serve_path = f"/api/v2/optimizations/{opt['id']}/serve"

        work = _work()
        cursor = iter(enumerate(work))
        lock = threading.Lock()
        acked: list[dict[str, Any]] = []  # 2xx serve answers, with the replica that answered
        acked_rewards: set[str] = set()
        failures = collections.Counter()
        done = [0]
        killed_at: list[float] = []
        victim = c.replicas[1]

        def worker() -> None:
            client = Client(c.lb_port, c.api_key)
            rng = random.Random(threading.get_ident())
            while True:
                with lock:
                    nxt = next(cursor, None)
                if nxt is None:
                    return
                _, (kind, n) = nxt
                if kind == "serve":
                    ctx = {"country": "US" if n % 2 else "DE", "device_type": "mobile"}
                    status, body, replica = client.post(
                        serve_path, {"anonymous_id": f"user-{n}", "context": ctx})
                    with lock:
                        if status == 200:
                            acked.append({**body, "replica": replica, "at": time.monotonic()})
                        else:
                            failures[status] += 1
                else:
                    keys = [f"rw-{n}-{j}" for j in range(BATCH)]
                    events = [{"anonymous_id": f"user-{rng.randrange(USERS)}",
                               "name": "signup_completed", "idempotency_key": k}
                              for k in keys]
                    status, body, _ = client.post("/api/v2/ingest/rewards",
                                                  {"events": events}, auth=True)
                    with lock:
                        if status in (200, 207):
                            acked_rewards.update(keys)
                        else:
                            failures[f"ingest {status}"] += 1
                with lock:
                    done[0] += 1

        trainings: list[tuple[int, Any]] = []

        def race_training() -> None:
            # Both survivors at once, straight to the replicas: the lease lets one train.
            live = [r for r in c.replicas if r is not victim]
            model_id = opt["model_id"]
            with concurrent.futures.ThreadPoolExecutor(len(live)) as pool:
                calls = [pool.submit(c.api, "POST", f"/api/v2/models/{model_id}/train", {},
                                     url=r.url) for r in live]
                trainings.extend((s, b) for s, b, _ in (f.result() for f in calls))

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        trained = False
        while any(t.is_alive() for t in threads):
            time.sleep(0.05)
            if not killed_at and done[0] >= len(work) * 0.35:
                c.kill(victim)
                killed_at.append(time.monotonic())
            if killed_at and not trained and done[0] >= len(work) * 0.6:
                trained = True
                race_training()
        for t in threads:
            t.join()

        # Acknowledged exposures and rewards are all stored (the survivors move what the
        # killed replica left in the exposure outbox).
        deadline = time.monotonic() + 30
        while pg_exec(c.database_url, "SELECT count(*) FROM exposure_outbox")[0][0]:
            assert time.monotonic() < deadline, "the exposure outbox does not drain"
            time.sleep(0.2)
        org = pg_exec(c.database_url, "SELECT organization_id FROM optimizations")[0][0]
        dw = PG_URL.rsplit("/", 1)[0] + "/lvdw_" + org.replace("-", "")
        stored_exposures = {e for (e,) in pg_exec(
            dw, "SELECT exposure_id FROM managed_dw.exposures WHERE source = 'serve'")}
        stored_rewards = {k for (k,) in pg_exec(
            dw, "SELECT idempotency_key FROM managed_dw.rewards")}
        assert len(acked) > USERS * VISITS * 0.9, failures
        missing = [a["exposure_id"] for a in acked if a["exposure_id"] not in stored_exposures]
        assert missing == [], f"{len(missing)} acknowledged exposures missing"
        assert acked_rewards and acked_rewards <= stored_rewards, \
            f"{len(acked_rewards - stored_rewards)} acknowledged rewards missing"
        dupes = pg_exec(dw, "SELECT count(*) - count(DISTINCT idempotency_key) "
                            "FROM managed_dw.rewards")[0][0]
        assert dupes == 0

        # Every user saw one variant, whichever replica answered, and the lock agrees.
        shown: dict[str, set[int]] = collections.defaultdict(set)
        replicas_of: dict[str, set[str]] = collections.defaultdict(set)
        for a in acked:
            shown[a["anonymous_id"]].add(a["variant_number"])
            replicas_of[a["anonymous_id"]].add(a["replica"])
        two = {u: v for u, v in shown.items() if len(v) > 1}
        assert two == {}, f"{len(two)} users were shown two variants"
        locks = dict(pg_exec(c.database_url,
                             "SELECT anonymous_id, variant_number FROM locks"))
        wrong = [u for u, v in shown.items() if u in locks and {locks[u]} != v]
        assert wrong == []
        holdout = {a["anonymous_id"] for a in acked if a["in_holdout"]}
        assert set(shown) - holdout <= set(locks)
        # The balancer really spread each user over replicas.
        assert sum(len(r) >= 2 for r in replicas_of.values()) > USERS * 0.8

        # One training per version, and the survivors kept serving after the kill.
        assert trainings, "the training race did not run"
        ok = [b for s, b in trainings if s == 200]
        assert ok, trainings
        assert all(s in (200, 409) for s, _ in trainings), trainings
        versions = sorted(b["version"] for b in ok)
        assert versions == list(range(versions[0], versions[0] + len(ok)))
        status, model, _ = c.api("GET", f"/api/v2/models/{opt['model_id']}")
        assert model["version"] == versions[-1]
        # A quarter of a second for answers in flight at the kill: the load goes on for about
        # a second after it, less as serving gets faster (a 1 s grace once left nothing).
        after = collections.Counter(a["replica"] for a in acked
                                    if a["at"] > killed_at[0] + 0.25)
        assert after["r0"] > 0 and after["r2"] > 0 and after["r1"] == 0, after
        # A new version reaches every survivor with traffic within the documented ~2 s.
        survivors = {r.index: r for r in c.replicas if r is not victim}
        served_with: dict[int, int] = {}
        deadline = time.monotonic() + 5
        while len(served_with) < len(survivors) and time.monotonic() < deadline:
            for i, r in survivors.items():
                _, body, _ = c.api("POST", serve_path,
                                   {"anonymous_id": f"late-{time.monotonic()}"}, url=r.url)
                if body["model_version"] == versions[-1]:
                    served_with[i] = body["model_version"]
            time.sleep(0.2)
        assert set(served_with) == set(survivors), (served_with, versions[-1])
