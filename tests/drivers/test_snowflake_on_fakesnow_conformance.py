"""The Snowflake driver on fakesnow: an emulator that runs Snowflake's SQL on DuckDB, behind
the connector's own API. What it cannot show (the role's grants, server-side timeouts and
cancellation, VARIANT comparison) is listed in docs/warehouse-drivers.md."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from levered_server.warehouse.conformance import DriverConformance, Table
from levered_server.warehouse.driver_api import ConnectionConfig

pytest.importorskip("snowflake.connector")
instance = pytest.importorskip("fakesnow.instance")

TYPES = {"text": "VARCHAR", "float": "DOUBLE", "integer": "BIGINT", "timestamp": "TIMESTAMP_NTZ",
         "timestamptz": "TIMESTAMP_TZ", "boolean": "BOOLEAN"}


class TestSnowflakeOnFakesnow(DriverConformance):
    slow_sql = None
    slow_sql_missing = "fakesnow has neither STATEMENT_TIMEOUT_IN_SECONDS nor SYSTEM$CANCEL_QUERY"
    exact_users = False  # APPROX_COUNT_DISTINCT
    # the second layer is the role's grants, which an emulator does not have
    connection_read_only = False
    # fakesnow compares PARSE_JSON values as DuckDB JSON text, key order included
    sorted_json = True

    @pytest.fixture(autouse=True)
    def _engine(self):
        self.fake = instance.FakeSnow()

    def make_driver(self, tables: dict[str, Table]) -> Any:
        from levered_server.warehouse.drivers.snowflake import SnowflakeDriver

        conn = self.fake.connect(database="LEVERED", schema="EVENTS")
        cur = conn.cursor()
        for name, (columns, rows) in tables.items():
            cur.execute(f"CREATE OR REPLACE TABLE {name} "
                        f"({', '.join(f'{c} {TYPES[kind]}' for c, kind in columns)})")
            if rows:
                marks = ", ".join(["%s"] * len(columns))
                cur.executemany(f"INSERT INTO {name} VALUES ({marks})",
                                [tuple(_utc(v) for v in r) for r in rows])
        conn.close()
        seen: list[dict[str, Any]] = []

        def connect(**login: Any) -> Any:  # the production call's arguments, on fakesnow
            seen.append(login)
            assert login["session_parameters"]["TIMEZONE"] == "UTC"
            return self.fake.connect(database=login["database"], schema=login["schema"])

        config = ConnectionConfig(
            organization_id="org", provider="snowflake", project_id="acme-xy12345",
            dataset_id="EVENTS", exposures_table=None,
            credentials={"account": "acme-xy12345", "username": "levered", "warehouse": "WH",
                         "database": "LEVERED", "schema": "EVENTS", "password": "pw",
                         "role": "LEVERED_READER"})
        return SnowflakeDriver(config, options={"snowflake_connect": connect})


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return value


def test_without_its_client_the_driver_names_its_extra(monkeypatch):
    import importlib.util

    from levered_server.warehouse.drivers.snowflake import SnowflakeDriver

    assert SnowflakeDriver.missing() is None
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "snowflake.connector" else found(name, *a))
    assert "pip install 'levered-server[snowflake]'" in (SnowflakeDriver.missing() or "")
