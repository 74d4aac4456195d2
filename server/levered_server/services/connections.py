"""Warehouse connections: validate with the provider's driver, test, save encrypted
(API.md 10.1–10.5)."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import select

from levered_server.clock import iso_s, new_id, utcnow
from levered_server.errors import FieldErrors, WarehouseError, WarehouseNotConnected, field_error
from levered_server.store.models import WarehouseConnection
from levered_server.warehouse.driver_api import (
    ConnectionConfig,
    WarehouseDriver,
    WarehouseFailure,
    credential_errors,
)
from levered_server.warehouse.managed_tables import EXPOSURES, SCHEMA
from levered_server.warehouse.manager import known_providers, missing_driver

_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
TEST_TIMEOUT = 10.0
STATUS_TIMEOUT = 5.0


def _driver_fields(runtime: Any, provider: str) -> dict[str, Any]:
    """What runs the connection's SQL (extensions): `engine` (the managed warehouse, `duckdb`
    in the contract, is on DuckDB or PostgreSQL per the server's settings), and the driver's
    name and version (null when no driver is installed)."""
    cls: type[WarehouseDriver] | None = runtime.warehouses.driver_class(provider)
    if cls is None:
        return {"engine": provider, "driver": None, "driver_version": None}
    name, version = cls.describe_driver()
    return {"engine": cls.provider, "driver": name, "driver_version": version}


def public(runtime: Any, row: WarehouseConnection) -> dict[str, Any]:
    """The connection object; credentials never leave the server."""
    cls = runtime.warehouses.driver_class(row.provider)
    return {"id": row.id, "provider": row.provider, "project_id": row.project_id,
            "dataset_id": row.dataset_id, "exposures_table": row.exposures_table,
            "managed": bool(cls is not None and cls.managed), **_driver_fields(runtime, row.provider),
            "created_at": iso_s(row.created_at), "updated_at": iso_s(row.updated_at)}


def validate_body(runtime: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Check a connection body (10.1) with the provider's driver; returns the normalized
    fields.

    :raises ValidationFailed: field errors; a provider without an installed driver is a
        `provider` error naming the command that installs it.
    """
    errors = FieldErrors()
    provider = data.get("provider")
    for key in data:
        if key not in ("provider", "project_id", "dataset_id", "credentials", "exposures_table"):
            errors.add(key, "unknown_field", "unknown field")
    providers = known_providers()
    if provider is None:
        errors.add("provider", "required", "is required")
    elif not isinstance(provider, str) or provider not in providers:
        errors.add("provider", "invalid_value", f"one of {', '.join(providers)}")
    for key in ("project_id", "dataset_id", "exposures_table"):
        if data.get(key) is not None and not isinstance(data[key], str):
            errors.add(key, "type", "must be a string")
    errors.raise_if_any()
    provider = str(provider)
    cls: type[WarehouseDriver] | None = runtime.warehouses.driver_class(provider)
    problem = missing_driver(provider)
    if problem is not None or cls is None:
        raise field_error("provider", "not_installed", problem or f"no {provider} driver")
    creds = data.get("credentials")
    if cls.managed:
        for key in ("project_id", "credentials", "exposures_table"):
            if data.get(key) is not None:
                errors.add(key, "unknown_field", f"not used by {provider} (the managed warehouse)")
        errors.raise_if_any()
        return {"provider": provider, "project_id": None, "dataset_id": SCHEMA,
                "exposures_table": EXPOSURES, "credentials": {}}
    if cls.project_id_use == "unused" and data.get("project_id") is not None:
        errors.add("project_id", "unknown_field", f"not used by {provider}")
    if cls.project_id_use == "required" and not data.get("project_id"):
        errors.add("project_id", "required", f"{provider} needs project_id")
    if cls.dataset_required and not data.get("dataset_id"):
        errors.add("dataset_id", "required", f"{provider} needs dataset_id")
    model = cls.credentials_model
    if model is None:
        if creds is not None:
            errors.add("credentials", "unknown_field", f"{provider} takes no credentials")
    elif creds is None:
        errors.add("credentials", "required", f"{provider} needs credentials")
    elif not isinstance(creds, dict):
        errors.add("credentials", "type", "must be an object")
    else:
        for field, code, message in credential_errors(model, creds):
            errors.add(field, code, message)
    table = data.get("exposures_table")
    if isinstance(table, str) and not all(_PART.match(p) for p in table.split(".")) \
            or (isinstance(table, str) and table.count(".") > 1):
        errors.add("exposures_table", "format", "use table or schema.table")
    errors.raise_if_any()
    creds = dict(creds or {})
    dataset = data.get("dataset_id") or cls.default_dataset(creds)
    exposures = table or f"{dataset}.levered_exposures"
    return {"provider": provider, "project_id": data.get("project_id"), "dataset_id": dataset,
            "exposures_table": exposures, "credentials": creds}


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
    fields = validate_body(runtime, data)
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
        result = public(runtime, row), created
    runtime.serve_cache.invalidate()  # whether serving records exposures may have changed
    return result


def get(*, runtime: Any, org_id: str) -> dict[str, Any] | None:
    """The organization's connection, or None."""
    with runtime.store.session(org_id) as s:
        row = s.scalars(select(WarehouseConnection)).first()
        return public(runtime, row) if row is not None else None


def test(*, runtime: Any, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Test the given settings (nothing saved) or, with an empty body, the saved connection."""
    if data:
        config = _config(org_id, validate_body(runtime, data))
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
        conn = public(runtime, row) if row is not None else None
        config = runtime.warehouses.config_of(row) if row is not None else None
    if conn is None or config is None:
        return {"connected": False, "provider": None, "managed": None, "engine": None,
                "driver": None, "driver_version": None, "connection_id": None, "project_id": None, "dataset_id": None,
                "exposures_table": None, "latency_ms": None, "warehouse_message": None,
                "checked_at": checked}
    message, latency = _probe(runtime, config, STATUS_TIMEOUT)
    return {"connected": message is None, "provider": conn["provider"],
            "managed": conn["managed"], "engine": conn["engine"], "driver": conn["driver"],
            "driver_version": conn["driver_version"], "connection_id": conn["id"],
            "project_id": conn["project_id"], "dataset_id": conn["dataset_id"],
            "exposures_table": conn["exposures_table"], "latency_ms": latency,
            "warehouse_message": message, "checked_at": checked}
