"""The managed warehouse on PostgreSQL: one database per organization, shared by replicas.

User SQL runs as the organization's read-only role (`pg_provision`); the server writes as
itself through a small pool (`pg_warehouses`). `provider` is `postgres` and the SQL is built with
the PostgreSQL dialect; the API still calls the connection `duckdb` (`api_provider`).
"""

from __future__ import annotations

from typing import Any

from levered_server.json_rows import dumps_rows, select_fields
from levered_server.warehouse.driver_api import NotReadOnly, WarehouseFailure
from levered_server.warehouse.exposure_writer import COLUMNS as EXPOSURE_COLUMNS
from levered_server.warehouse.managed_tables import EXPOSURES, SCHEMA, table_of
from levered_server.warehouse.pg_warehouses import PgWarehouses
from levered_server.warehouse.postgres_driver import PostgresDriver

# Column types other than text, which the inserted rows' JSON values are cast to.
_TYPES = {"variant": "jsonb", "context": "jsonb", "properties": "jsonb",
          "variant_number": "integer", "model_version": "integer", "in_holdout": "boolean",
          "propensity": "double precision", "value": "double precision",
          "timestamp_utc": "timestamp", "created_at": "timestamp"}


def insert_sql(table: str, columns: tuple[str, ...], rows: list[dict[str, Any]]
               ) -> tuple[str, list[str]]:
    """One INSERT of every row (one JSON parameter, `json_rows`) that skips rows whose
    exposure id or idempotency key is already stored (the unique indexes), also when another
    replica inserts the same key at the same time; RETURNING one row per insert."""
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
           f"SELECT {select_fields([_TYPES.get(c, 'text') for c in columns])} "
           "FROM jsonb_array_elements(%s::jsonb) AS x ON CONFLICT DO NOTHING RETURNING 1")
    return sql, [dumps_rows([r.get(c) for c in columns] for r in rows)]


def payload_insert_sql() -> str:
    """One INSERT of exposures from their outbox payloads (`services/outbox.encode`): the
    payloads joined into one `jsonb` array parameter, each field cast, no decoding in Python;
    an exposure id already stored is skipped."""
    fields = select_fields([_TYPES.get(c, "text") for c in EXPOSURE_COLUMNS],
                           keys=EXPOSURE_COLUMNS)
    return (f"INSERT INTO {EXPOSURES} ({', '.join(EXPOSURE_COLUMNS)}) SELECT {fields} "
            "FROM jsonb_array_elements(%s::jsonb) AS x ON CONFLICT DO NOTHING")


_PAYLOAD_INSERT = payload_insert_sql()


class ManagedPostgresDriver(PostgresDriver):
    """An organization's managed warehouse in its own PostgreSQL database."""

    provider = "postgres"
    driver_name = "managed-postgres"
    managed = True
    credentials_model = None

    @property
    def dataset(self) -> str:
        return SCHEMA

    @property
    def warehouses(self) -> PgWarehouses:
        """The server's PostgreSQL warehouses (logins, provisioning, writer pool)."""
        found: PgWarehouses = self.options["managed_postgres"]
        return found

    def _login(self) -> dict[str, Any]:
        return self.warehouses.reader_login(self.config.organization_id)

    def _refused(self, exc: Exception) -> WarehouseFailure:
        self.warehouses.forget_if_gone(self.config.organization_id, exc)
        if "password authentication failed" in str(exc):
            return WarehouseFailure(
                "the managed warehouse refused its reader role's password: every server "
                "replica needs the same secret key (LEVERED_SECRET_KEY); restart them once "
                "it is the same")
        return super()._refused(exc)

    def _failure(self, state: str, text: str) -> Exception:
        if state == "42501":  # insufficient_privilege: the reader role may only read its tables
            return NotReadOnly(None, f"The query was refused: {text}")
        return super()._failure(state, text)

    def append_exposures(self, rows: list[dict[str, Any]]) -> None:
        """Insert exposure rows (keyed by `exposure_writer.COLUMNS`) in one transaction; an
        exposure id already stored is skipped, so a retried batch cannot duplicate.

        :raises WarehouseFailure: nothing was written.
        """
        if rows:
            with self.warehouses.writer(self.config.organization_id) as conn:
                conn.execute(*insert_sql(EXPOSURES, EXPOSURE_COLUMNS, rows))

    def append_exposure_payloads(self, payloads: list[str]) -> None:
        """Insert exposures from their outbox payloads, as `append_exposures` does their rows.

        :raises WarehouseFailure: nothing was written.
        """
        if payloads:
            with self.warehouses.writer(self.config.organization_id) as conn:
                conn.execute(_PAYLOAD_INSERT, ["[" + ",".join(payloads) + "]"])

    def ingest(self, kind: str, rows: list[dict[str, Any]]) -> int:
        """Insert the rows whose idempotency key (and exposure id) is new, in one transaction;
        return how many were duplicates.

        :raises WarehouseFailure: nothing was written.
        """
        table, columns = table_of(kind)
        if not rows:
            return 0
        with self.warehouses.writer(self.config.organization_id) as conn:
            inserted = len(conn.execute(*insert_sql(table, columns, rows)).fetchall())
        return len(rows) - inserted
