"""The example SQLite driver, loaded through its entry point, on real SQLite files."""

from __future__ import annotations

import importlib.metadata
import sqlite3
import uuid
from typing import Any

import pytest

from levered_server.warehouse.conformance import DriverConformance, Table
from levered_server.warehouse.driver_api import ENTRY_POINT_GROUP, ConnectionConfig

# Declared types the driver converts by (BOOLEAN → bool, TIMESTAMP → datetime).
TYPES = {"text": "TEXT", "float": "REAL", "integer": "INTEGER", "timestamp": "TIMESTAMP",
         "boolean": "BOOLEAN"}


def _driver_class() -> Any:
    (ep,) = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
             if e.name == "sqlite"]
    return ep.load()


def test_registers_through_the_entry_point():
    cls = _driver_class()
    assert cls.provider == "sqlite" and cls.missing() is None
    assert cls.describe_driver() == ("levered-warehouse-sqlite", "0.1.0")


class TestSQLite(DriverConformance):
    has_timestamptz = False  # SQLite keeps timestamps as text
    escapes = ["ATTACH ':memory:' AS m", "PRAGMA query_only = OFF",
               "SELECT load_extension('x')", "VACUUM INTO '/tmp/levered-vacuum.db'"]
    slow_sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                "SELECT count(*) FROM n")

    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path):
        self.dir = tmp_path

    def make_driver(self, tables: dict[str, Table]) -> Any:
        path = self.dir / f"{uuid.uuid4().hex[:8]}.db"
        with sqlite3.connect(path) as con:
            for name, (columns, rows) in tables.items():
                con.execute(f"CREATE TABLE {name} "
                            f"({', '.join(f'{c!r} {TYPES[kind]}' for c, kind in columns)})")
                con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(columns))})",
                                [tuple(_stored(v) for v in r) for r in rows])
        con.close()
        config = ConnectionConfig(organization_id="org", provider="sqlite", project_id=None,
                                  dataset_id="main", exposures_table=None,
                                  credentials={"path": str(path)})
        return _driver_class()(config, options={})


def _stored(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    return value
