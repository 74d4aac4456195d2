"""Values for people: short IDs, relative times, percentages, intervals and bars."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

BAR_WIDTH = 20


def short_id(value: str | None) -> str:
    """The first 8 characters of an ID (enough to pass back as a prefix)."""
    return (value or "")[:8]


def parse_time(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset) into an aware datetime."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def ago(value: str | None, now: dt.datetime | None = None) -> str:
    """``3m ago``, ``2h ago``, ``5d ago``, or the date for older times; ``-`` for none."""
    if not value:
        return "-"
    then = parse_time(value)
    seconds = ((now or dt.datetime.now(dt.UTC)) - then).total_seconds()
    if seconds < 0:
        return then.strftime("%Y-%m-%d %H:%M")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago" if unit != "d" or seconds < 30 * 86400 else then.strftime("%Y-%m-%d")
    return "just now"


def percent(value: float | None, signed: bool = False, digits: int = 1) -> str:
    """A percentage already in percent units (``8.2`` → ``+8.2%``); ``-`` for null."""
    if value is None:
        return "-"
    return f"{value:+.{digits}f}%" if signed else f"{value:.{digits}f}%"


def fraction(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage (``0.62`` → ``62.0%``); ``-`` for null."""
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def interval(bounds: list[float] | tuple[float, float] | None, signed: bool = True) -> str:
    """``[+3.1%, +27.4%]`` for an interval in percent; empty for null."""
    if not bounds or bounds[0] is None or bounds[1] is None:
        return ""
    return f"[{percent(bounds[0], signed)}, {percent(bounds[1], signed)}]"


def bar(value: float | None, width: int = BAR_WIDTH) -> str:
    """A horizontal bar for a fraction in [0, 1], in eighths of a character."""
    if value is None:
        return ""
    eighths = round(max(0.0, min(1.0, value)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "")).ljust(width)


def number(value: Any, digits: int = 4) -> str:
    """A number with at most ``digits`` decimals, never in exponent form; ``-`` for null."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 10 ** digits:
            return f"{value:.{digits}g}"
        # ``digits`` significant figures in fixed point (rates read badly as 3.1e-05), at most 6 decimals.
        decimals = min(6, max(0, digits - 1 - math.floor(math.log10(abs(value)))))
        text = f"{value:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def variant_label(variant: dict[str, Any]) -> str:
    """``headline=Ship faster, cta_text=Get started``."""
    return ", ".join(f"{key}={value}" for key, value in variant.items())
