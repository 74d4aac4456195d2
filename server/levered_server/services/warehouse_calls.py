"""Running driver calls for a service: the org's driver, and failures → contract errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from levered_server.errors import (
    ApiError,
    InvalidSql,
    NotFound,
    ReadOnlyViolation,
    WarehouseError,
    WarehouseNotConnected,
)
from levered_server.warehouse.driver_api import (
    NotReadOnly,
    SqlRejected,
    TableNotFound,
    WarehouseDriver,
    WarehouseFailure,
)


class Limit(NamedTuple):
    """A statement time limit and the setting that changes it (named in the error)."""

    seconds: float
    setting: str


def user_query_limit(runtime: Any) -> Limit:
    """The time limit of users' own queries (query, table and metric previews)."""
    return Limit(float(runtime.settings.warehouse_query_timeout_seconds),
                 "LEVERED_WAREHOUSE_QUERY_TIMEOUT_SECONDS")


def server_query_limit(runtime: Any) -> Limit:
    """The time limit of the server's own statements (training, results, observations)."""
    return Limit(float(runtime.settings.query_timeout_seconds), "LEVERED_QUERY_TIMEOUT_SECONDS")


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
               table: str | None = None, dataset: str | None = None,
               limit: Limit | None = None) -> Iterator[None]:
    """Map driver failures to the contract's errors (read_only_violation, 422, 404, 502).

    :param limit: the time limit the statements ran under: a timeout's message names it and
        its setting (`details.limit_seconds`, `details.setting`).
    """
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
        message = f"The warehouse failed: {first_line(exc.message)}"
        if exc.timeout:
            details["timeout"] = True
            if limit is not None:
                details.update(limit_seconds=limit.seconds, setting=limit.setting)
                message = (f"The query ran into the server's {limit.seconds:g} s limit and was "
                           f"stopped; narrow it (a WHERE on time, a LIMIT), or raise the limit "
                           f"with {limit.setting} on the server.")
        if exc.cancelled:
            details["cancelled"] = True
            message = "The query was cancelled: the client went away."
        raise WarehouseError(message, details=details) from None
