"""Running driver calls for a service: the org's driver, and failures → contract errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from levered_server.errors import (
    ApiError,
    InvalidSql,
    NotFound,
    ReadOnlyViolation,
    WarehouseError,
    WarehouseNotConnected,
)
from levered_server.warehouse.base import NotReadOnly, SqlRejected, TableNotFound, WarehouseDriver, WarehouseFailure


def driver_for(runtime: Any, org_id: str) -> WarehouseDriver:
    """The organization's warehouse driver.

    :raises WarehouseNotConnected: the organization has no connection.
    """
    driver: WarehouseDriver | None = runtime.warehouses.for_org(org_id)
    if driver is None:
        raise WarehouseNotConnected("No warehouse is connected; create a connection first.")
    return driver


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"


@contextlib.contextmanager
def translated(provider: str, *, rejected: type[ApiError] = InvalidSql,
               rejected_prefix: str = "The warehouse rejected the query",
               table: str | None = None, dataset: str | None = None) -> Iterator[None]:
    """Map driver failures to the contract's errors (read_only_violation, 422, 404, 502)."""
    try:
        yield
    except NotReadOnly as exc:
        kind = {"statement_type": exc.statement_type} if exc.statement_type else None
        raise ReadOnlyViolation(exc.message, details=kind) from None
    except SqlRejected as exc:
        raise rejected(f"{rejected_prefix}: {first_line(exc.message)}",
                       details={"provider": provider, "warehouse_message": exc.message}) from None
    except TableNotFound:
        raise NotFound(f"Table {table!r} not found in dataset {dataset!r}.") from None
    except WarehouseFailure as exc:
        details: dict[str, Any] = {"provider": provider, "warehouse_message": exc.message}
        if exc.timeout:
            details["timeout"] = True
        raise WarehouseError(f"The warehouse failed: {first_line(exc.message)}",
                             details=details) from None
