"""The embedded DuckDB driver passes the driver conformance suite: as the managed warehouse
(exposures written by the server), and its dialect on a bring-your-own exposures table."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from levered_server.warehouse.conformance import DriverConformance, Table
from levered_server.warehouse.driver_api import ConnectionConfig
from levered_server.warehouse.duckdb_driver import DuckDBDriver

TYPES = {"text": "VARCHAR", "float": "DOUBLE", "integer": "BIGINT", "timestamp": "TIMESTAMP",
         "timestamptz": "TIMESTAMPTZ", "boolean": "BOOLEAN"}


class _ByoDuckDB(DuckDBDriver):
    """The same engine reading a `levered_exposures` table as a customer's warehouse would."""

    managed = False


class TestManagedDuckDB(DriverConformance):
    slow_sql = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"
    escapes = ["SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true",
               "ATTACH '/tmp/levered-conformance.duckdb' AS x", "COPY typed TO '/tmp/levered-conformance.csv'",
               "INSTALL httpfs", "SET memory_limit = '64GB'"]
    exact_users = False  # approx_count_distinct (training_sql's docstring)
    driver_class: type[DuckDBDriver] = DuckDBDriver

    @pytest.fixture(autouse=True)
    def _warehouse_dir(self, tmp_path):
        self.warehouse_dir = tmp_path

    def make_driver(self, tables: dict[str, Table]) -> Any:
        config = ConnectionConfig(organization_id=f"org-{uuid.uuid4().hex[:8]}",
                                  provider="duckdb", project_id=None, dataset_id="managed_dw",
                                  exposures_table="levered_exposures", credentials={})
        driver = self.driver_class(config, options={"warehouse_dir": str(self.warehouse_dir),
                                                    "threads": 2})
        with driver.writer() as con:
            for name, (columns, rows) in tables.items():
                cols = ", ".join(f'"{c}" {TYPES[kind]}' for c, kind in columns)
                con.execute(f'CREATE TABLE managed_dw."{name}" ({cols})')
                if rows:
                    marks = ", ".join("?" for _ in columns)
                    con.executemany(f'INSERT INTO managed_dw."{name}" VALUES ({marks})',
                                    [list(r) for r in rows])
        return driver


class TestDuckDBDialectOnBringYourOwnExposures(TestManagedDuckDB):
    driver_class = _ByoDuckDB


@pytest.mark.parametrize("user,percent,expected", [("user-12", 10, True), ("user-42", 10, False),
                                                   ("user-24", 1, True), ("user-12", 6, False)])
def test_the_duckdb_holdout_hash_matches_the_test_vectors(user, percent, expected):
    import types

    import duckdb

    from levered_server.services.exposure_source import holdout_condition

    opt = types.SimpleNamespace(id="699ede80-c94b-4f98-9c79-dd3e07748703",
                                holdout_percentage=percent)
    sql = f"SELECT {holdout_condition(DuckDBDriver.dialect, 'CAST($u AS VARCHAR)', opt)}"
    with duckdb.connect() as con:
        assert con.execute(sql, {"u": user}).fetchone()[0] is expected
