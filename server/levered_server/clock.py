"""Time and identifier helpers shared by every layer (API.md 1.6)."""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid

UTC = dt.UTC


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware UTC, microsecond precision."""
    return dt.datetime.now(UTC)


def utcnow_s() -> dt.datetime:
    """Return the current time truncated to whole seconds (object lifecycle times)."""
    return utcnow().replace(microsecond=0)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Treat naive datetimes (as SQLite and DuckDB return them) as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_s(value: dt.datetime | None) -> str | None:
    """Format a lifecycle time: `2026-01-15T10:30:00Z`."""
    if value is None:
        return None
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(value: dt.datetime | None) -> str | None:
    """Format an event time: `2026-01-15T10:30:00.123Z`."""
    if value is None:
        return None
    v = as_utc(value)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp that carries `Z` or an offset; return UTC.

    :raises ValueError: when the text is not a timestamp or has no offset.
    """
    value = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError("timestamp needs Z or an offset")
    return value.astimezone(UTC)


def new_id() -> str:
    """Return a new lowercase UUID4 string."""
    return str(uuid.uuid4())


def canonical_uuid(text: str) -> str | None:
    """Return the canonical lowercase form of a UUID string, or None if it is not one."""
    if not isinstance(text, str) or len(text) != 36:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


# Identifiers that name records but guard nothing (request ids, exposure ids) come from this
# generator, seeded from the OS per process: `uuid4` and `secrets` read `os.urandom`, a system
# call that releases the GIL, and on the serving event loop each release let a background
# thread take it for up to the 5 ms switch interval (docs/benchmarks.md). Secrets and tokens
# keep using `secrets`.
_ids = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    # Forked workers must not repeat the parent's sequence.
    os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


def new_record_id() -> str:
    """Return a new lowercase UUID4 string for a record that guards nothing (an exposure);
    unique like `new_id`, without a system call."""
    # The version (4) and variant (10) bits set as `uuid.UUID(version=4)` does, formatted
    # directly: a quarter of the constructor's cost.
    h = f"{_ids.getrandbits(128) & _CLEAR | _SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_request_id() -> str:
    """Return `req_` + 24 lowercase hex characters."""
    return f"req_{_ids.getrandbits(96):024x}"
