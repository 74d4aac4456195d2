"""The embedded DuckDB warehouse under contention (issue 15 points 3 and 6).

A writer that gives up waiting must not touch the connection another writer holds, and a
user's heavy query must neither make a second query wait nor hold up exposure writes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading

import pytest

from levered_server.warehouse import duckdb_driver
from levered_server.warehouse.driver_api import Cancel, ConnectionConfig, WarehouseFailure
from levered_server.warehouse.duckdb_driver import DuckDBDriver
from levered_server.warehouse.exposure_writer import insert_exposures
from tests.live_server import LiveServer

HEAVY = "SELECT sum(a.range*b.range) AS s FROM range(100000) a, range(100000) b"


def _driver(tmp_path, org: str = "org") -> DuckDBDriver:
    return DuckDBDriver(ConnectionConfig(org, "duckdb", None, "managed_dw", None, {}),
                        options={"warehouse_dir": str(tmp_path), "threads": 1})


def _row(i: int) -> dict[str, object]:
    return {"exposure_id": f"e-{i}", "timestamp_utc": dt.datetime(2026, 1, 1)}


def test_a_writer_that_times_out_leaves_the_holders_connection_alone(tmp_path, monkeypatch):
    # The holder is inside its transaction; a second writer waits for the lock, gives up,
    # and must not close the shared connection under the holder (whose COMMIT then failed
    # with "Connection already closed").
    monkeypatch.setattr(duckdb_driver, "WRITE_WAIT", 0.2)
    driver = _driver(tmp_path)
    inside, gave_up = threading.Event(), threading.Event()
    failures: list[str] = []

    def second_writer() -> None:
        inside.wait(10)
        try:
            with driver.writer():
                pass
        except WarehouseFailure as exc:
            failures.append(exc.message)
        finally:
            gave_up.set()

    t = threading.Thread(target=second_writer)
    t.start()
    with driver.writer() as con:
        insert_exposures(con, [_row(1)])
        inside.set()
        assert gave_up.wait(10)
    t.join()
    assert failures and "busy" in failures[0]
    assert driver.query("SELECT count(*) AS n FROM exposures", limit=1,
                        timeout=5).rows == [{"n": 1}]


def test_a_heavy_query_blocks_neither_queries_nor_exposure_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(duckdb_driver, "WRITE_WAIT", 2.0)
    driver = _driver(tmp_path)
    driver.append_exposures([_row(0)])
    cancel = Cancel()
    started, outcome = threading.Event(), []

    def heavy() -> None:
        started.set()
        try:
            driver.query(HEAVY, limit=1, timeout=120, cancel=cancel)
            outcome.append("finished")
        except WarehouseFailure as exc:
            outcome.append(exc.message)

    t = threading.Thread(target=heavy)
    t.start()
    try:
        assert started.wait(10)
        # while it runs: exposure writes (a 2 s wait at most) and another query go through
        for i in range(1, 4):
            driver.append_exposures([_row(i)])
        assert driver.query("SELECT count(*) AS n FROM exposures", limit=1,
                            timeout=5).rows == [{"n": 4}]
        assert t.is_alive()
    finally:
        cancel.cancel()
        t.join(30)
    assert not t.is_alive() and outcome and "cancel" in outcome[0]


@pytest.mark.parametrize("timeout", [0.3])
def test_a_user_query_stops_at_its_limit(tmp_path, timeout):
    driver = _driver(tmp_path)
    with pytest.raises(WarehouseFailure) as caught:
        driver.query(HEAVY, limit=1, timeout=timeout)
    assert caught.value.timeout is True


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_heavy_query_over_http_blocks_nobody_and_stops_when_the_client_goes(tmp_path):
    # Issue 15: the heavy query of the report, sent to a real server, then the client closes
    # its connection (Ctrl-C on the CLI).
    server = LiveServer.launch(tmp_path, env={"LEVERED_WAREHOUSE_THREADS": "1",
                                              "LEVERED_WAREHOUSE_QUERY_TIMEOUT_SECONDS": "300"})
    try:
        assert server.api("POST", "/api/v2/warehouse/query", {"sql": "SELECT 1 AS one"})[0] == 200
        body = json.dumps({"sql": HEAVY, "limit": 1}).encode()
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST /api/v2/warehouse/query HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Authorization: Bearer {server.api_key}\r\n".encode()
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert server.process is not None
        pid = server.process.pid
        before = _cpu_seconds(pid)
        while _cpu_seconds(pid) - before < 1.0:  # the statement is running
            threading.Event().wait(0.1)
        # meanwhile: another query and ingested events (the writer) go through at once
        status, rows = server.api("POST", "/api/v2/warehouse/query", {"sql": "SELECT 2 AS two"})
        assert status == 200 and rows["rows"] == [{"two": 2}]
        status, ingested = server.api("POST", "/api/v2/ingest/rewards", {"events": [
            {"anonymous_id": "u1", "name": "signup"}]})
        assert status == 200 and ingested["accepted"] == 1, ingested
        sock.close()  # the client goes away: the statement is cancelled
        for _ in range(300):
            start = _cpu_seconds(pid)
            threading.Event().wait(0.5)
            if _cpu_seconds(pid) - start < 0.2:
                break
        else:
            raise AssertionError("the server kept computing after the client left")
        status, rows = server.api("POST", "/api/v2/warehouse/query", {
            "sql": "SELECT count(*) AS n FROM rewards"})
        assert status == 200 and rows["rows"] == [{"n": 1}]
    finally:
        server.stop()
