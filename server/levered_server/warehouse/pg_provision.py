"""Creating an organization's managed warehouse on PostgreSQL: its database, reader role,
tables and grants. Idempotent, and safe when several server replicas do it at once.

Every organization gets a database `lvdw_<org hex>` (one schema `managed_dw`, so metric SQL
says `managed_dw.rewards` on every organization) and a login role `lvdw_<org hex>_r` that
user SQL runs as: read-only by default, CONNECT on its own database only, SELECT on its
tables. The server's own user owns the database and writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from levered_server.warehouse.driver_api import WarehouseFailure
from levered_server.warehouse.managed_tables import EXPOSURES, REWARDS, SCHEMA

# Bumped when the DDL changes; kept as the schema's comment, so a provisioned database is
# recognised with one catalog read (and no lock on the tables).
VERSION = "levered managed warehouse v1"
# The columns of DuckDB's managed_dw; varchar (text by another name) so results are typed
# VARCHAR as there, jsonb so JSON compares and groups. Indexes: the exposures of an
# optimization, a user's exposures and rewards, rewards by name (what metric SQL filters on).
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {EXPOSURES} (
  exposure_id varchar, anonymous_id varchar, optimization_id varchar, variant jsonb,
  variant_number integer, context jsonb, in_holdout boolean, propensity double precision,
  model_version integer, source varchar, idempotency_key varchar, timestamp_utc timestamp,
  organization_id varchar, created_at timestamp);
CREATE TABLE IF NOT EXISTS {REWARDS} (
  reward_id varchar, anonymous_id varchar, name varchar, value double precision,
  timestamp_utc timestamp, organization_id varchar, optimization_id varchar, properties jsonb,
  idempotency_key varchar, created_at timestamp);
CREATE INDEX IF NOT EXISTS exposures_optimization
  ON {EXPOSURES} (optimization_id, variant_number);
CREATE INDEX IF NOT EXISTS exposures_anonymous ON {EXPOSURES} (anonymous_id, timestamp_utc);
CREATE INDEX IF NOT EXISTS rewards_anonymous ON {REWARDS} (anonymous_id, timestamp_utc);
CREATE INDEX IF NOT EXISTS rewards_name ON {REWARDS} (name, timestamp_utc);
-- Ingestion is idempotent across replicas: INSERT … ON CONFLICT DO NOTHING on these.
CREATE UNIQUE INDEX IF NOT EXISTS exposures_exposure_id ON {EXPOSURES} (exposure_id)
  WHERE exposure_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS exposures_idempotency_key ON {EXPOSURES} (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS rewards_idempotency_key ON {REWARDS} (idempotency_key)
  WHERE idempotency_key IS NOT NULL;
"""
DUPLICATE = ("42P04", "42710", "23505")  # duplicate_database, duplicate_object, unique index


def database_name(org_id: str) -> str:
    """`lvdw_<organization UUID hex>`."""
    return "lvdw_" + uuid.UUID(org_id).hex


def reader_role(org_id: str) -> str:
    """`lvdw_<organization UUID hex>_r`, the role user SQL runs as."""
    return database_name(org_id) + "_r"


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def missing_privileges(conn: Any) -> list[str]:
    """What of CREATEDB and CREATEROLE the connected user lacks (a superuser has both)."""
    superuser, createdb, createrole = conn.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
        "WHERE rolname = current_user").fetchone()
    return [] if superuser else [n for n, ok in (("CREATEDB", createdb),
                                                  ("CREATEROLE", createrole)) if not ok]


def refusal(user: str, missing: list[str]) -> str:
    """The one message for a server user that may not create warehouses."""
    return (f"The managed warehouse on PostgreSQL needs the database user {user!r} to have "
            f"CREATEDB and CREATEROLE; it lacks {' and '.join(missing)}. Grant them "
            f"(ALTER ROLE {user} {' '.join(missing)}), set LEVERED_WAREHOUSE_URL to a server "
            "where it has them, or set LEVERED_MANAGED_WAREHOUSE=duckdb.")


def _run(conn: Any, statement: Any) -> bool:
    """Execute; False when the object already exists (another replica was first)."""
    import psycopg

    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        if getattr(exc, "sqlstate", None) in DUPLICATE:
            return False
        raise
    return True


def provision(maintenance: Any, connect_db: Callable[[str], Any], org_id: str, password: str,
              timeout_ms: int) -> None:
    """Create what is missing of the organization's database, role, tables and grants.

    :param maintenance: an autocommit connection of the server's user to any database.
    :param connect_db: opens a connection of the server's user to a database by name.
    :raises WarehouseFailure: the server's user may not create them.
    """
    from psycopg import sql

    db, role = database_name(org_id), reader_role(org_id)
    ident_db, ident_role = sql.Identifier(db), sql.Identifier(role)
    # One replica at a time per organization; the others wait, then find it all there.
    maintenance.execute("SELECT pg_advisory_lock(%s)", (_lock_key(db),))
    try:
        has_role = maintenance.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                       (role,)).fetchone()
        has_db = maintenance.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                     (db,)).fetchone()
        missing = [p for p in missing_privileges(maintenance)
                   if p == "CREATEROLE" or not has_db]
        if missing:
            user = maintenance.execute("SELECT current_user").fetchone()[0]
            raise WarehouseFailure(refusal(user, missing))
        if not has_role:
            _run(maintenance, sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                "NOREPLICATION NOBYPASSRLS").format(ident_role))
        # The password is derived from the server's secret, so replicas sharing the secret
        # agree; setting it on each process's first use also follows a changed secret.
        maintenance.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
            ident_role, sql.Literal(password)))
        for setting, value in (("default_transaction_read_only", "on"),
                               ("statement_timeout", str(timeout_ms))):
            maintenance.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(
                ident_role, sql.Identifier(setting), sql.Literal(value)))
        if not has_db:
            # template0: nothing an operator added to template1 (extensions…) comes along.
            _run(maintenance, sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident_db))
        maintenance.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident_db))
        maintenance.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            ident_db, ident_role))
        _tables(connect_db(db), ident_role)
    finally:
        with contextlib.suppress(Exception):  # a broken connection has released it already
            maintenance.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(db),))


def _tables(conn: Any, ident_role: Any) -> None:
    """Schema, tables, indexes and the reader's grants, unless this version is in place."""
    from psycopg import sql

    with conn:  # commits and closes
        done = conn.execute("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                            "WHERE nspname = %s", (SCHEMA,)).fetchone()
        if done and done[0] == VERSION:
            return
        conn.execute(DDL)
        for statement in (
                "REVOKE ALL ON SCHEMA public FROM PUBLIC",
                "GRANT USAGE ON SCHEMA {schema} TO {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}",
                "COMMENT ON SCHEMA {schema} IS {version}"):
            conn.execute(sql.SQL(statement).format(schema=sql.Identifier(SCHEMA), role=ident_role,
                                                   version=sql.Literal(VERSION)))
