"""`levered warehouse status` shows the warehouse driver when the server names it (our
server's extension) and leaves the line out when it does not (the hosted API)."""

from __future__ import annotations

import re

import pytest

META = {"request_id": "req_1"}
STATUS = {"connected": True, "provider": "duckdb", "managed": True, "engine": "duckdb",
          "connection_id": "c1", "project_id": None, "dataset_id": "managed_dw",
          "exposures_table": "managed_dw.exposures", "latency_ms": 3, "warehouse_message": None,
          "checked_at": "2026-11-25T17:45:00Z", "meta": META}
ENV = {"LEVERED_API_KEY": "lvk_" + "k" * 43}


@pytest.mark.parametrize("extra,line", [
    ({"driver": "duckdb", "driver_version": "0.1.0"}, "Driver     duckdb 0.1.0"),
    ({"driver": "clickhouse", "driver_version": None}, "Driver     clickhouse"),
    ({}, None)])
def test_status_shows_the_driver_when_sent(cli, stub_api, extra, line):
    stub_api.add("GET", "/api/v2/warehouse/status", 200, {**STATUS, **extra})
    run = cli("warehouse", "status", env={"LEVERED_API_URL": stub_api.url, **ENV})
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Provider   duckdb (managed)"
    if line is None:
        assert not any(re.match(r"Driver\b", s) for s in lines)
        assert lines[1].startswith("Dataset")
    else:
        assert lines[1] == line
