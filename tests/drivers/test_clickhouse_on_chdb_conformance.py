"""The ClickHouse driver on chDB: the ClickHouse engine in-process, reached through the same
client (clickhouse-connect's ``interface="chdb"``) the driver uses over HTTP in production."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from levered_server.warehouse.conformance import DriverConformance, Table
from levered_server.warehouse.driver_api import ConnectionConfig

clickhouse_connect = pytest.importorskip("clickhouse_connect")
pytest.importorskip("chdb")

TYPES = {"text": "Nullable(String)", "float": "Nullable(Float64)", "integer": "Nullable(Int64)",
         "timestamp": "Nullable(DateTime64(6))", "timestamptz": "Nullable(DateTime64(6, 'UTC'))",
         "boolean": "Nullable(Bool)"}


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory):
    # chDB runs one engine per process, on one path: every test of this module shares it.
    return str(tmp_path_factory.mktemp("chdb"))


class TestClickHouseOnChdb(DriverConformance):
    slow_sql = "SELECT count() FROM numbers(1000000000000)"
    # refused by readonly=1: reading server files and URLs, turning read-only off, settings
    escapes = ["SELECT * FROM file('/etc/hostname', 'LineAsString')",
               "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV')",
               "SELECT 1 SETTINGS readonly = 0", "SET max_execution_time = 0",
               "CREATE TEMPORARY TABLE t3 (a Int8)", "SYSTEM FLUSH LOGS"]
    exact_users = False  # uniq(): exact below 65,536 values, a sample beyond

    @pytest.fixture(autouse=True)
    def _engine(self, chdb_path):
        self.path = chdb_path

    def make_driver(self, tables: dict[str, Table]) -> Any:
        from levered_server.warehouse.drivers.clickhouse import ClickHouseDriver

        database = "levered_" + uuid.uuid4().hex[:10]
        writer = clickhouse_connect.get_client(interface="chdb", path=self.path)
        try:
            writer.command(f"CREATE DATABASE {database}")
            for name, (columns, rows) in tables.items():
                cols = ", ".join(f"`{c}` {TYPES[kind]}" for c, kind in columns)
                writer.command(f"CREATE TABLE {database}.{name} ({cols}) ENGINE = MergeTree "
                               "ORDER BY tuple()")
                if rows:
                    writer.insert(f"{database}.{name}", [list(r) for r in rows],
                                  column_names=[c for c, _ in columns])
        finally:
            writer.close()

        def client(**kw: Any) -> Any:  # the production call's arguments, on chDB
            assert kw["host"] == "clickhouse.example" and kw["secure"]
            return clickhouse_connect.get_client(interface="chdb", path=self.path,
                                                 database=kw["database"])

        config = ConnectionConfig(organization_id="org", provider="clickhouse", project_id=None,
                                  dataset_id=database, exposures_table=None,
                                  credentials={"host": "clickhouse.example",
                                               "database": database})
        return ClickHouseDriver(config, options={"clickhouse_client": client})


def test_without_its_client_the_driver_names_its_extra(monkeypatch):
    import importlib.util

    from levered_server.warehouse.drivers.clickhouse import ClickHouseDriver

    assert ClickHouseDriver.missing() is None
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "clickhouse_connect" else found(name, *a))
    assert "pip install 'levered-server[clickhouse]'" in (ClickHouseDriver.missing() or "")
