"""The bring-your-own PostgreSQL driver passes the driver conformance suite (each case in a
fresh schema of the test PostgreSQL, dropped afterwards)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from levered_server.warehouse.conformance import DriverConformance, Table
from levered_server.warehouse.driver_api import ConnectionConfig
from levered_server.warehouse.postgres_driver import PostgresDriver
from tests.pg import PG_URL, SKIP_REASON

pytestmark = pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)
TYPES = {"text": "text", "float": "double precision", "integer": "bigint",
         "timestamp": "timestamp", "timestamptz": "timestamptz", "boolean": "boolean"}


def _connect() -> Any:
    import psycopg

    return psycopg.connect(str(PG_URL).replace("+psycopg", ""), autocommit=True)


class TestPostgres(DriverConformance):
    slow_sql = "SELECT pg_sleep(600)"
    # Statements that pass as queries: the read-only transaction must still refuse them.
    escapes = ["SELECT set_config('transaction_read_only', 'off', false)",
               "SELECT nextval('conformance_seq')"]

    @pytest.fixture(autouse=True)
    def _schemas(self):
        self.schemas: list[str] = []
        yield
        with _connect() as conn:
            for schema in self.schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    def make_driver(self, tables: dict[str, Table]) -> Any:
        import sqlalchemy

        schema = "conform_" + uuid.uuid4().hex[:10]
        self.schemas.append(schema)
        with _connect() as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'CREATE SEQUENCE "{schema}".conformance_seq')
            for name, (columns, rows) in tables.items():
                cols = ", ".join(f'"{c}" {TYPES[kind]}' for c, kind in columns)
                conn.execute(f'CREATE TABLE "{schema}"."{name}" ({cols})')
                if rows:
                    marks = ", ".join("%s" for _ in columns)
                    with conn.cursor() as cur:
                        cur.executemany(f'INSERT INTO "{schema}"."{name}" VALUES ({marks})', rows)
        url = sqlalchemy.engine.make_url(str(PG_URL))
        config = ConnectionConfig(
            organization_id="org", provider="postgres", project_id=None, dataset_id=schema,
            exposures_table=f"{schema}.levered_exposures",
            credentials={"host": url.host or "127.0.0.1", "port": url.port or 5432,
                         "database": url.database, "username": url.username,
                         "password": url.password, "sslmode": "disable"})
        return PostgresDriver(config, options={})
