"""Query parameters the contract types more tightly than FastAPI does."""

from __future__ import annotations

import datetime as dt

from levered_server.clock import UTC
from levered_server.errors import BadRequest


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    """`true`/`false`/`1`/`0` only (API.md 1.2)."""
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f"Invalid query parameter {name!r}: use true or false.",
                     details={"parameter": name})


def parse_start_date(name: str, value: str | None, default: dt.datetime) -> dt.datetime:
    """A date (`YYYY-MM-DD` = midnight UTC) or an RFC 3339 timestamp."""
    if value is None:
        return default
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=UTC)
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise BadRequest(f"Invalid query parameter {name!r}: use YYYY-MM-DD or an ISO-8601 "
                         "timestamp.", details={"parameter": name}) from None
