"""`kill -9` of the embedded default (SQLite + DuckDB, one process) under load loses nothing
it acknowledged: every 2xx serve's exposure and sticky lock are there after a restart."""

from __future__ import annotations

import http.client
import json
import signal
import sqlite3
import threading
import time

import duckdb

from tests.live_server import LiveServer


def test_kill_9_under_load_loses_no_acknowledged_serve(tmp_path):
    server = LiveServer.launch(tmp_path)
    try:
        optimization = server.live_optimization("kill", ["a", "b", "c"])
        acked: list[dict] = []
        lock = threading.Lock()
        stop = threading.Event()

        def worker(w: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    conn.request("POST", f"/api/v2/optimizations/{optimization}/serve",
                                 json.dumps({"anonymous_id": f"k{w}-{i}"}),
                                 {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    return
                if resp.status == 200:
                    with lock:
                        acked.append(json.loads(data))

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(3)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        stop.set()
        for t in threads:
            t.join(10)
        assert len(acked) > 100
        data = tmp_path / "data"
        with sqlite3.connect(data / "levered.sqlite3") as db:
            locks = dict(db.execute("SELECT anonymous_id, variant_number FROM locks"))
            outbox = {json.loads(p)["exposure_id"] for (p,) in db.execute(
                "SELECT payload FROM exposure_outbox")}
        assert all(locks.get(a["anonymous_id"]) == a["variant_number"] for a in acked)
        # The restarted server keeps every acknowledged user on the variant it was shown,
        # and moves what the crash left in the outbox into the warehouse.
        server.start()
        for a in acked[:20]:
            status, body = server.api("POST", f"/api/v2/optimizations/{optimization}/serve",
                                      {"anonymous_id": a["anonymous_id"]})
            assert status == 200 and body["variant_number"] == a["variant_number"]
    finally:
        server.stop()
    exposures = [e for (e,) in _duck(data, "SELECT exposure_id FROM managed_dw.exposures")]
    missing = [a for a in acked if a["exposure_id"] not in set(exposures)]
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged exposures lost " \
                          f"({len(outbox)} were in the outbox at the crash)"
    assert len(exposures) == len(set(exposures)), "an exposure was moved twice"
    with sqlite3.connect(data / "levered.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM exposure_outbox").fetchone()[0] == 0


def _duck(data, sql):
    org_files = list((data / "warehouse").glob("*.duckdb"))
    assert len(org_files) == 1
    con = duckdb.connect(str(org_files[0]), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
