"""Converting warehouse values to JSON per API.md 10.8."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any

MAX_SAFE_INT = 2**53


def to_json(value: Any, type_name: str = "") -> Any:
    """Convert one value as the result-set rules say."""
    if value is None or isinstance(value, (bool, str)) and type_name.upper() != "JSON":
        return value
    if isinstance(value, str):  # JSON column text
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return "NaN"
        if value.is_infinite():
            return "Infinity" if value > 0 else "-Infinity"
        return int(value) if value == value.to_integral_value() and abs(value) <= MAX_SAFE_INT \
            else float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            v = value.astimezone(dt.UTC)
            return v.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def unique_names(names: list[str]) -> list[str]:
    """Suffix duplicate column names with `_2`, `_3`, …"""
    seen: dict[str, int] = {}
    out = []
    taken = set(names)
    for name in names:
        if name not in seen:
            seen[name] = 1
            out.append(name)
            continue
        n = seen[name]
        while True:
            n += 1
            candidate = f"{name}_{n}"
            if candidate not in taken:
                break
        seen[name] = n
        taken.add(candidate)
        out.append(candidate)
    return out
