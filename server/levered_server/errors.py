"""The error tree: every failure the API reports is an `ApiError` with a contract code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with a status, a contract code (API.md 1.5), a message and details."""

    status = 500
    code = "internal"
    headers: dict[str, str] = {}
    #: Not logged per request (a 5xx is): the load shed on purpose, counted in `limits.TALLY`.
    quiet = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if headers:
            self.headers = headers


def _error(name: str, status: int, code: str) -> type[ApiError]:
    return type(name, (ApiError,), {"status": status, "code": code})


BadRequest = _error("BadRequest", 400, "bad_request")
ReadOnlyViolation = _error("ReadOnlyViolation", 400, "read_only_violation")
Forbidden = _error("Forbidden", 403, "forbidden")
NotFound = _error("NotFound", 404, "not_found")
Conflict = _error("Conflict", 409, "conflict")
OptimizationNotLive = _error("OptimizationNotLive", 409, "optimization_not_live")
ModelUnavailable = _error("ModelUnavailable", 409, "model_unavailable")
TrainingInProgress = _error("TrainingInProgress", 409, "training_in_progress")
MetricInUse = _error("MetricInUse", 409, "metric_in_use")
MetricDeleted = _error("MetricDeleted", 409, "metric_deleted")
ManagedWarehouseRequired = _error("ManagedWarehouseRequired", 409, "managed_warehouse_required")
WarehouseNotConnected = _error("WarehouseNotConnected", 409, "warehouse_not_connected")
InvalidMetricSql = _error("InvalidMetricSql", 422, "invalid_metric_sql")
InvalidSql = _error("InvalidSql", 422, "invalid_sql")
WarehouseError = _error("WarehouseError", 502, "warehouse_error")
Internal = _error("Internal", 500, "internal")


class Unauthorized(ApiError):
    """No valid credential; carries the `WWW-Authenticate` challenge."""

    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="levered"'}


class RateLimited(ApiError):
    """Over the rate limit of a bucket."""

    status = 429
    code = "rate_limited"


class Unavailable(ApiError):
    """A transient failure; the client should retry."""

    status = 503
    code = "unavailable"
    headers = {"Retry-After": "5"}


class Overloaded(Unavailable):
    """503: the server sheds load on purpose (a limit of `limits.py`); retry after a while."""

    quiet = True


MAX_FIELD_ERRORS = 50


class FieldErrors:
    """Collects field problems; raises one `422 validation_error` with all of them."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, code: str, message: str) -> None:
        """Record one problem (the first 50 are kept)."""
        if len(self.items) < MAX_FIELD_ERRORS:
            self.items.append({"field": field, "code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise `ValidationFailed` when at least one problem was recorded."""
        if self.items:
            raise ValidationFailed(self.items)


class ValidationFailed(ApiError):
    """`422 validation_error` with `details.fields`."""

    status = 422
    code = "validation_error"

    def __init__(self, fields: list[dict[str, str]]) -> None:
        fields = fields[:MAX_FIELD_ERRORS]
        if len(fields) == 1:
            message = f"{fields[0]['field'] or 'body'}: {fields[0]['message']}"
        else:
            message = f"{len(fields)} fields are invalid"
        super().__init__(message, details={"fields": fields})


def field_error(field: str, code: str, message: str) -> ValidationFailed:
    """Build a `422 validation_error` for a single field."""
    return ValidationFailed([{"field": field, "code": code, "message": message}])


class StartRefused(RuntimeError):
    """The server must not start; the message is one line for the operator (no traceback)."""
