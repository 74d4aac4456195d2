"""Warehouse connections: validate per provider, test, save encrypted (API.md 10.1–10.5)."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import select

from levered_server.clock import iso_s, new_id, utcnow
from levered_server.errors import FieldErrors, WarehouseError, WarehouseNotConnected
from levered_server.store.models import WarehouseConnection
from levered_server.warehouse.base import ConnectionConfig, WarehouseFailure

_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
PROVIDERS = ("duckdb", "postgres", "bigquery", "snowflake")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
TEST_TIMEOUT = 10.0
STATUS_TIMEOUT = 5.0


def engine_of(runtime: Any, provider: str) -> str:
    """What runs the connection's SQL (extension): the managed warehouse (`duckdb` in the
    contract) is on DuckDB or PostgreSQL per the server's settings; others are themselves."""
    return str(runtime.settings.managed_engine) if provider == "duckdb" else provider


def public(row: WarehouseConnection, engine: str) -> dict[str, Any]:
    """The connection object; credentials never leave the server."""
    return {"id": row.id, "provider": row.provider, "project_id": row.project_id,
            "dataset_id": row.dataset_id, "exposures_table": row.exposures_table,
            "managed": row.provider == "duckdb", "engine": engine,
            "created_at": iso_s(row.created_at), "updated_at": iso_s(row.updated_at)}


def _str(errors: FieldErrors, creds: dict[str, Any], key: str, *, required: bool,
         allow_empty: bool = False) -> None:
    value = creds.get(key)
    if value is None:
        if required:
            errors.add(f"credentials.{key}", "required", "is required")
    elif not isinstance(value, str):
        errors.add(f"credentials.{key}", "type", "must be a string")
    elif not value and not allow_empty:
        errors.add(f"credentials.{key}", "too_short", "must not be empty")


def _credentials(errors: FieldErrors, provider: str, creds: dict[str, Any]) -> None:
    if provider == "postgres":
        for key in creds:
            if key not in ("host", "port", "database", "username", "password", "sslmode"):
                errors.add(f"credentials.{key}", "unknown_field", "unknown field")
        for key in ("host", "database", "username"):
            _str(errors, creds, key, required=True)
        _str(errors, creds, "password", required=False, allow_empty=True)
        port = creds.get("port", 5432)
        if isinstance(port, bool) or not isinstance(port, int):
            errors.add("credentials.port", "type", "must be an integer")
        elif not 1 <= port <= 65535:
            errors.add("credentials.port", "out_of_range", "must be 1-65535")
        if creds.get("sslmode", "prefer") not in SSLMODES:
            errors.add("credentials.sslmode", "invalid_value", f"one of {', '.join(SSLMODES)}")
    elif provider == "bigquery":
        for key in ("type", "project_id", "private_key", "client_email"):
            _str(errors, creds, key, required=True)
        if creds.get("type") not in (None, "service_account"):
            errors.add("credentials.type", "invalid_value", "must be service_account")
    elif provider == "snowflake":
        for key in ("account", "username", "warehouse", "database", "schema"):
            _str(errors, creds, key, required=True)
        _str(errors, creds, "role", required=False)
        has_pw, has_key = creds.get("password") is not None, creds.get("private_key") is not None
        if has_pw == has_key:
            errors.add("credentials.password", "required",
                       "give exactly one of password or private_key")
        for key in creds:
            if key not in ("account", "username", "warehouse", "database", "schema", "role",
                           "password", "private_key"):
                errors.add(f"credentials.{key}", "unknown_field", "unknown field")


def validate_body(data: dict[str, Any]) -> dict[str, Any]:
    """Check a connection body (10.1); returns the normalized fields."""
    errors = FieldErrors()
    provider: str = data.get("provider")  # type: ignore[assignment]
    for key in data:
        if key not in ("provider", "project_id", "dataset_id", "credentials", "exposures_table"):
            errors.add(key, "unknown_field", "unknown field")
    if provider is None:
        errors.add("provider", "required", "is required")
    elif provider not in PROVIDERS:
        errors.add("provider", "invalid_value", f"one of {', '.join(PROVIDERS)}")
    for key in ("project_id", "dataset_id", "exposures_table"):
        if data.get(key) is not None and not isinstance(data[key], str):
            errors.add(key, "type", "must be a string")
    errors.raise_if_any()
    byo = provider != "duckdb"
    if provider in ("duckdb", "postgres") and data.get("project_id") is not None:
        errors.add("project_id", "unknown_field", f"not used by {provider}")
    if provider in ("bigquery", "snowflake") and not data.get("project_id"):
        errors.add("project_id", "required", f"{provider} needs project_id")
    if provider == "bigquery" and not data.get("dataset_id"):
        errors.add("dataset_id", "required", "bigquery needs dataset_id")
    creds = data.get("credentials")
    if not byo and creds is not None:
        errors.add("credentials", "unknown_field", "duckdb takes no credentials")
    if not byo and data.get("exposures_table") is not None:
        errors.add("exposures_table", "unknown_field", "duckdb always uses managed_dw.exposures")
    if byo:
        if creds is None:
            errors.add("credentials", "required", f"{provider} needs credentials")
        elif not isinstance(creds, dict):
            errors.add("credentials", "type", "must be an object")
        else:
            _credentials(errors, provider, creds)
    table = data.get("exposures_table")
    if isinstance(table, str) and not all(_PART.match(p) for p in table.split(".")) \
            or (isinstance(table, str) and table.count(".") > 1):
        errors.add("exposures_table", "format", "use table or schema.table")
    errors.raise_if_any()
    dataset = "managed_dw" if not byo else data.get("dataset_id") or (
        "public" if provider == "postgres" else (creds or {}).get("schema"))
    exposures = "managed_dw.exposures" if not byo else table or f"{dataset}.levered_exposures"
    return {"provider": provider, "project_id": data.get("project_id"), "dataset_id": dataset,
            "exposures_table": exposures, "credentials": dict(creds or {})}


def _config(org_id: str, fields: dict[str, Any]) -> ConnectionConfig:
    return ConnectionConfig(organization_id=org_id, provider=fields["provider"],
                            project_id=fields["project_id"], dataset_id=fields["dataset_id"],
                            exposures_table=fields["exposures_table"],
                            credentials=fields["credentials"])


def _probe(runtime: Any, config: ConnectionConfig, timeout: float) -> tuple[str | None, int]:
    started = time.perf_counter()
    try:
        runtime.warehouses.build(config).ping(timeout=timeout)
        message = None
    except WarehouseFailure as exc:
        message = exc.message
    return message, int((time.perf_counter() - started) * 1000)


def save(*, runtime: Any, org_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Test, then create or replace the organization's connection. Returns (object, created)."""
    fields = validate_body(data)
    message, _ = _probe(runtime, _config(org_id, fields), TEST_TIMEOUT)
    if message is not None:
        raise WarehouseError(f"Cannot use this connection: {message.splitlines()[0]}",
                             details={"provider": fields["provider"],
                                      "warehouse_message": message})
    sealed = runtime.secrets.seal(fields["credentials"]) if fields["credentials"] else None
    now = utcnow()
    with runtime.store.session(org_id) as s:
        row = s.scalars(select(WarehouseConnection)).first()
        created = row is None
        if row is None:
            row = WarehouseConnection(id=new_id(), created_at=now)
            s.add(row)
        row.provider, row.project_id = fields["provider"], fields["project_id"]
        row.dataset_id, row.exposures_table = fields["dataset_id"], fields["exposures_table"]
        row.credentials_encrypted, row.updated_at = sealed, now
        s.flush()
        result = public(row, engine_of(runtime, row.provider)), created
    runtime.serve_cache.invalidate()  # whether serving records exposures may have changed
    return result


def get(*, runtime: Any, org_id: str) -> dict[str, Any] | None:
    """The organization's connection, or None."""
    with runtime.store.session(org_id) as s:
        row = s.scalars(select(WarehouseConnection)).first()
        return public(row, engine_of(runtime, row.provider)) if row is not None else None


def test(*, runtime: Any, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Test the given settings (nothing saved) or, with an empty body, the saved connection."""
    if data:
        config = _config(org_id, validate_body(data))
    else:
        with runtime.store.session(org_id) as s:
            row = s.scalars(select(WarehouseConnection)).first()
            if row is None:
                raise WarehouseNotConnected("No warehouse is connected.")
            config = runtime.warehouses.config_of(row)
    message, latency = _probe(runtime, config, TEST_TIMEOUT)
    return {"ok": message is None, "provider": config.provider, "latency_ms": latency,
            "warehouse_message": message}


def status(*, runtime: Any, org_id: str) -> dict[str, Any]:
    """Check the saved connection with a trivial query; always answers."""
    checked = iso_s(utcnow())
    with runtime.store.session(org_id) as s:
        row = s.scalars(select(WarehouseConnection)).first()
        conn = public(row, engine_of(runtime, row.provider)) if row is not None else None
        config = runtime.warehouses.config_of(row) if row is not None else None
    if conn is None or config is None:
        return {"connected": False, "provider": None, "managed": None, "engine": None,
                "connection_id": None, "project_id": None, "dataset_id": None,
                "exposures_table": None, "latency_ms": None, "warehouse_message": None,
                "checked_at": checked}
    message, latency = _probe(runtime, config, STATUS_TIMEOUT)
    return {"connected": message is None, "provider": conn["provider"],
            "managed": conn["managed"], "engine": conn["engine"], "connection_id": conn["id"],
            "project_id": conn["project_id"], "dataset_id": conn["dataset_id"],
            "exposures_table": conn["exposures_table"], "latency_ms": latency,
            "warehouse_message": message, "checked_at": checked}
