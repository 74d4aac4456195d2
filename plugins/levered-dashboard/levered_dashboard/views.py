"""The pure layer of the dashboard: API bodies in, rows and lines of plain text out (the list).

No Textual and no I/O here. The Textual widgets show exactly these rows and lines, and
``--once`` prints them, so both render the same numbers the same way. Every panel survives
a body it does not understand: it says "not available" instead of raising.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from levered_core.plugin_api import ago, fraction, interval, percent, short_id
from levered_dashboard.data import Item, Snapshot

SPARKS = "▁▂▃▄▅▆▇█"
#: Below this width the list uses compact cells.
WIDE = 140
CELL_PADDING = 1


def clip(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with an ellipsis."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def count(value: Any) -> str:
    """``950``, ``12.3k``, ``4.1M``; ``-`` for null."""
    if value is None:
        return "-"
    n = float(value)
    if abs(n) >= 1e6:
        return f"{n / 1e6:.1f}M"
    if abs(n) >= 1e4:
        return f"{n / 1e3:.1f}k" if abs(n) < 1e5 else f"{n / 1e3:.0f}k"
    return str(int(n))


def seconds_ago(seconds: float) -> str:
    """``4s ago``, ``2m 5s ago``, ``1h 3m ago``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m {s % 60}s ago"
    return f"{s // 3600}h {s % 3600 // 60}m ago"


def sparkline(values: list[float], top: float | None = None) -> str:
    """One character per value, ``▁`` to ``█`` scaled to ``top`` (default: the largest); blank for 0."""
    top = top if top is not None else max(values, default=0)
    if not top or top <= 0:
        return " " * len(values)
    return "".join(" " if v <= 0 else SPARKS[min(7, int(v / top * 7.999))] for v in values)


def variant_name(variant: dict[str, Any]) -> str:
    """``#3 Build better / Get started``."""
    levels = " / ".join(str(value) for value in (variant.get("variant") or {}).values())
    return f"#{variant.get('number', '?')} {levels}".rstrip()


def variants_of(item: Item) -> list[dict[str, Any]]:
    """Per-variant posterior: the model state's if present, else the results'."""
    for body in (item.state, item.results):
        if body and isinstance(body.get("variants"), list):
            return list(body["variants"])
    return []


def is_trained(item: Item) -> bool:
    """Whether the model has published a version (trained at least once)."""
    body = item.state or item.results or {}
    return bool(body.get("version") or body.get("model_version"))


def leader(item: Item) -> dict[str, Any] | None:
    """The variant with the highest P(best) (ties: lowest number); ``None`` while untrained."""
    variants = variants_of(item)
    if not variants or not is_trained(item):
        return None
    return max(variants, key=lambda v: (v.get("prob_best") or 0.0, -int(v.get("number") or 0)))


def _lift(item: Item) -> tuple[float | None, list[float] | None]:
    stats = (item.results or {}).get("stats") or {}
    if stats.get("best_vs_baseline_percent") is not None:
        return stats["best_vs_baseline_percent"], stats.get("best_vs_baseline_interval")
    return ((item.optimization.get("summary") or {}).get("lift"), None)


def lift_text(value: float | None, bounds: list[float] | None, compact: bool) -> str:
    """``+18.0% [+4.2%, +32.9%]``, or compact ``+18% [+4,+33]``; ``-`` when unknown."""
    if value is None:
        return "-"
    if not compact:
        return f"{percent(value, signed=True)} {interval(bounds)}".rstrip()
    text = f"{value:+.0f}%"
    if bounds and bounds[0] is not None and bounds[1] is not None:
        text += f" [{bounds[0]:+.0f},{bounds[1]:+.0f}]"
    return text


def _exposures(item: Item) -> Any:
    if item.results and item.results.get("variants") is not None:
        return sum(v.get("exposures") or 0 for v in item.results["variants"])
    return (item.optimization.get("summary") or {}).get("exposures")


def trained_text(item: Item, now: dt.datetime | None = None) -> str:
    """When the model last trained, and ``(failed)`` if its last run failed."""
    body = item.state or item.results
    if not body:
        return "-"  # neither answered (yet, or at all on this server): unknown, not "never"
    text = ago(body.get("trained_at"), now) if body.get("trained_at") else "never"
    if ((item.state or {}).get("last_run") or {}).get("outcome") == "failed":
        text += " (failed)"
    return text


def list_columns(width: int) -> list[tuple[str, int]]:
    """The list's column labels and widths for a terminal ``width`` columns wide."""
    if width < WIDE:
        fixed = [("Status", 9), ("Var", 3), ("Exp", 6), ("Leader", 8), ("Lift [95%]", 13),
                 ("Best", 5), ("Trained", 7)]
    else:
        fixed = [("Status", 9), ("Variants", 8), ("Exposures", 9), ("Leader", 30), ("Lift (best) [95%]", 24),
                 ("P(best)", 7), ("Trained", 16)]
    used = sum(w for _, w in fixed) + 2 * CELL_PADDING * (len(fixed) + 1) + 1  # + the scrollbar
    rest = max(10, width - used)
    name = max(10, min(rest, 12 + (rest - 12) // 2))  # the name and the leader share what is left
    extra = max(0, min(40 - fixed[3][1], rest - name))
    fixed[3] = ("Leader", fixed[3][1] + extra)
    return [("Optimization", rest - extra), *fixed]


def list_rows(snapshot: Snapshot, width: int, now: dt.datetime | None = None) -> list[tuple[str, ...]]:
    """One row of cells per optimization, each cut to its column's width."""
    columns = list_columns(width)
    compact = width < WIDE
    rows = []
    for item in snapshot.items:
        rows.append(tuple(clip(cell, w) for cell, (_, w) in zip(_row(item, compact, now), columns, strict=True)))
    return rows


def _row(item: Item, compact: bool, now: dt.datetime | None) -> tuple[str, ...]:
    opt = item.optimization
    try:
        best = leader(item)
        value, bounds = _lift(item)
        variants = opt.get("variants_count", (opt.get("summary") or {}).get("variants_count"))
        return (str(opt.get("name") or "-"), str(opt.get("status") or "-"), "-" if variants is None else str(variants),
                count(_exposures(item)), variant_name(best) if best else "-", lift_text(value, bounds, compact),
                fraction(best.get("prob_best"), 0 if compact else 1) if best else "-", trained_text(item, now))
    except (KeyError, TypeError, ValueError, AttributeError):
        return (str(opt.get("name", "?")), str(opt.get("status", "?")), "?", "?", "?", "?", "?", "?")


def status_line(snapshot: Snapshot, refresh: float, now: float) -> str:
    """``updated 4s ago · every 10s · 2 optimizations`` or the problem and how old the data is."""
    age = f"data from {seconds_ago(now - snapshot.updated_at)}" if snapshot.updated_at else "no data yet"
    if snapshot.problem:
        return f"{snapshot.problem} · retrying every {refresh:g}s · {age} · {snapshot.problem_detail}"
    if snapshot.updated_at is None:
        return f"loading from {snapshot.api_url} …"
    return (f"updated {seconds_ago(now - snapshot.updated_at)} · every {refresh:g}s · "
            f"{len(snapshot.items)} optimizations · {snapshot.api_url}")


def title_line(item: Item) -> str:
    """The detail screen's heading."""
    opt = item.optimization
    holdout = opt.get("holdout_percentage")  # neither it nor model_type is in every server's list items
    return (f"{opt.get('name') or '-'} · {opt.get('status') or '-'} · {opt.get('model_type') or '-'} · "
            f"{short_id(item.id)} · holdout {'-' if holdout is None else f'{holdout}%'}")


def list_frame(snapshot: Snapshot, width: int, refresh: float, now: float) -> str:
    """The list screen as plain text (``--once``)."""
    columns = list_columns(width)
    def line(cells: tuple[str, ...] | list[str]) -> str:
        return " ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, columns, strict=True)).rstrip()
    body = [line([label for label, _ in columns])] + [line(row) for row in list_rows(snapshot, width)]
    if not snapshot.items:
        body.append("(no optimizations yet: `levered optimizations create`)")
    return "\n".join(["Levered dashboard · optimizations", "", *body, "", status_line(snapshot, refresh, now)])
