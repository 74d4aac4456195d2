"""The BigQuery driver with its statements parsed as GoogleSQL by sqlglot and run on DuckDB
(tests/drivers/bigquery_on_duckdb.py): the driver's own SQL, parameters, dry-run check, time
limit and cancellation, through the client library's classes, but not a live project."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from levered_server.warehouse.conformance import DriverConformance, Table
from levered_server.warehouse.driver_api import ConnectionConfig

pytest.importorskip("google.cloud.bigquery")
pytest.importorskip("sqlglot")

TYPES = {"text": "VARCHAR", "float": "DOUBLE", "integer": "BIGINT", "timestamp": "TIMESTAMP",
         "timestamptz": "TIMESTAMPTZ", "boolean": "BOOLEAN"}
KEY = {"type": "service_account", "project_id": "acme-analytics",
       "private_key": "-----BEGIN PRIVATE KEY-----\n…\n-----END PRIVATE KEY-----\n",
       "client_email": "levered@acme-analytics.iam.gserviceaccount.com"}


class TestBigQueryOnSqlglotDuckDB(DriverConformance):
    slow_sql = ("SELECT COUNT(*) FROM UNNEST(GENERATE_ARRAY(1, 1000000)) AS a "
                "CROSS JOIN UNNEST(GENERATE_ARRAY(1, 1000000)) AS b")
    exact_users = False  # APPROX_COUNT_DISTINCT
    # DuckDB's JSON text keeps the key order BigQuery's JSON type sorts
    sorted_json = True

    @pytest.fixture(autouse=True)
    def _emulator(self):
        from tests.drivers.bigquery_on_duckdb import Emulator

        self.emulator = Emulator()
        yield
        self.emulator.close()

    def make_driver(self, tables: dict[str, Table]) -> Any:
        from levered_server.warehouse.drivers.bigquery import BigQueryDriver

        dataset = "events_" + uuid.uuid4().hex[:8]
        db = self.emulator.db
        db.execute("SET TimeZone = 'UTC'")
        db.execute(f"CREATE SCHEMA {dataset}")
        self.emulator.datasets.add(dataset)
        for name, (columns, rows) in tables.items():
            cols = ", ".join(f'"{c}" {TYPES[kind]}' for c, kind in columns)
            db.execute(f'CREATE TABLE {dataset}."{name}" ({cols})')
            if rows:
                db.executemany(f'INSERT INTO {dataset}."{name}" VALUES '
                               f"({', '.join('?' for _ in columns)})",
                               [[_utc(v) for v in r] for r in rows])
        config = ConnectionConfig(organization_id="org", provider="bigquery",
                                  project_id="acme-analytics", dataset_id=dataset,
                                  exposures_table=None, credentials=dict(KEY))
        return BigQueryDriver(config, options={"bigquery_client": self.emulator.client})


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return value


def test_without_its_client_the_driver_names_its_extra(monkeypatch):
    import importlib.util

    from levered_server.warehouse.drivers.bigquery import BigQueryDriver

    assert BigQueryDriver.missing() is None
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "google.cloud.bigquery" else found(name, *a))
    assert "pip install 'levered-server[bigquery]'" in (BigQueryDriver.missing() or "")
