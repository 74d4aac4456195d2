"""How progress, lift history, guardrails and report data read for people (and as CSV).

Every field is read as possibly absent (a server may send less): it then shows ``-``.
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any

from levered_core.errors import UsageError
from levered_core.plugin_api import fraction, interval, percent

SPARKS = "▁▂▃▄▅▆▇█"
DIRECTIONS = ("higher", "lower")


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _label(key: Any) -> str:
    """``headline=Ship faster, cta_text=Get started`` from a variant key (its JSON), else the key."""
    try:
        variant = json.loads(key) if isinstance(key, str) else None
    except ValueError:
        variant = None
    if not isinstance(variant, dict):
        return "-" if key is None else str(key)
    return ", ".join(f"{name}={value}" for name, value in variant.items())


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


def sparkline(values: list[float | None]) -> str:
    """One character per value, scaled between the smallest and largest (space for null)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    span = (hi - lo) or 1.0
    return "".join(" " if v is None else SPARKS[round((v - lo) / span * (len(SPARKS) - 1))]
                   for v in values)


def parse_guardrail(raw: str) -> tuple[str, str, float]:
    """``METRIC[:higher|lower[:TOLERANCE]]`` → (metric, direction, tolerance)."""
    parts = raw.split(":")
    if len(parts) > 3 or not parts[0]:
        raise UsageError(f"--guardrail {raw!r}: use METRIC_ID[:higher|lower[:TOLERANCE]], "
                         "e.g. 4754cae0:higher:0.02")
    direction = parts[1] if len(parts) > 1 and parts[1] else "higher"
    if direction not in DIRECTIONS:
        raise UsageError(f"--guardrail {raw!r}: the direction is higher or lower, not {direction!r}")
    try:
        tolerance = float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError:
        raise UsageError(f"--guardrail {raw!r}: the tolerance is a number such as 0.02 (2 %)") from None
    if not 0 <= tolerance < 1:
        raise UsageError(f"--guardrail {raw!r}: the tolerance is a fraction from 0 up to 1 (0.02 = 2 %)")
    return parts[0], direction, tolerance


def progress_text(p: dict[str, Any]) -> str:
    """``optimizations progress``."""
    best = p.get("current_best") or {}
    holdout = p.get("holdout") or {}
    lines = [f"Progress of {_text(p.get('optimization_id'))} ({_text(p.get('status'))})", "",
             f"Running        {_text(p.get('days_running'))} days (live since {_text(p.get('started_at'))})",
             f"Exposures      {_text(p.get('exposures'))} ({_text(p.get('users'))} users; holdout "
             f"{_text(holdout.get('exposures'))} exposures, {_text(holdout.get('users'))} users)",
             f"Model          version {_text(p.get('model_version'))}",
             f"Current best   #{_text(best.get('number'))} {_label(best.get('variant_key'))} "
             f"(P(best) {fraction(best.get('prob_best'))})" if best else "Current best   - (not trained yet)",
             f"Best's share   {fraction(p.get('best_traffic_share'))} of optimized exposures so far, "
             f"{fraction(best.get('allocation'))} of traffic now",
             f"Progress       {fraction(p.get('estimated_progress'))} of the way to a clear winner "
             f"(weight 0.7); the policy captures {fraction(p.get('policy_progress'))} of the best's gain", ""]
    rows = p.get("variants") or []
    lines.append(f"  {'#':>3}  {'EXPOSURES':>9}  {'USERS':>7}  {'SHARE':>6}  {'P(BEST)':>7}  VARIANT")
    for v in rows:
        lines.append(f"  {_text(v.get('number')):>3}  {_text(v.get('exposures')):>9}  {_text(v.get('users')):>7}  "
                     f"{fraction(v.get('traffic_share')):>6}  {fraction(v.get('prob_best')):>7}  "
                     f"{_label(v.get('variant_key'))}")
    return "\n".join(lines)


def lift_history_text(body: dict[str, Any]) -> str:
    """``optimizations lift-history``: a sparkline, then one row per day."""
    points = body.get("points") or []
    if not points:
        return f"No lift history for {_text(body.get('optimization_id'))} yet: a point is kept per day a training run publishes."
    lines = [f"Lift history of {_text(body.get('optimization_id'))} ({len(points)} day(s))",
             f"Policy lift  {sparkline([p.get('policy_lift_percent') for p in points])}",
             f"Best lift    {sparkline([p.get('best_lift_percent') for p in points])}", "",
             f"  {'DATE':<10}  {'VERSION':>7}  {'POLICY LIFT':<28}  {'BEST':>4}  {'BEST LIFT':<28}  P(BEST)"]
    for p in points:
        policy = f"{percent(p.get('policy_lift_percent'), signed=True)} {interval(p.get('policy_lift_interval'))}"
        best = f"{percent(p.get('best_lift_percent'), signed=True)} {interval(p.get('best_lift_interval'))}"
        lines.append(f"  {_text(p.get('date')):<10}  {_text(p.get('model_version')):>7}  {policy:<28}  "
                     f"{'#' + _text(p.get('best_number')):>4}  {best:<28}  {fraction(p.get('best_prob'))}")
    return "\n".join(lines)


def stop_line(body: dict[str, Any]) -> str | None:
    """``Stopped: …`` when a guardrail stopped the optimization, else None."""
    reason = body.get("stop_reason")
    if not reason:
        return None
    return (f"Stopped {_text(reason.get('stopped_at'))}: guardrail {reason.get('metric_name') or reason.get('metric_id')} "
            f"violated (lift {percent(reason.get('lift_percent'), signed=True)}, always-valid p = {_p(reason.get('p_value'))}); "
            f"{reason.get('action') or 'optimization stopped'}")


def guardrail_lines(body: dict[str, Any]) -> list[str]:
    """The guardrails as configured (for ``show``)."""
    rows = body.get("guardrails") or []
    auto = "auto-stop on" if body.get("auto_stop") else "auto-stop off"
    lines = [f"Guardrails ({auto})" if rows else f"Guardrails   none ({auto})"]
    lines += [f"  {g.get('metric_name') or g.get('metric_id')}: {g.get('direction')} is better, "
              f"tolerance {fraction(g.get('tolerance'))}" for g in rows]
    stopped = stop_line(body)
    return lines + ([stopped] if stopped else [])


def guardrails_text(body: dict[str, Any]) -> str:
    """``optimizations guardrails``."""
    rows = body.get("guardrails") or []
    lines = [f"Guardrails of {_text(body.get('optimization_id'))} ({_text(body.get('status'))}; "
             f"auto-stop {'on' if body.get('auto_stop') else 'off'}; test {_text(body.get('test'))}, "
             f"alpha {_text(body.get('alpha'))})", ""]
    if not rows:
        lines.append("  none: add them with `levered optimizations update ID --guardrail METRIC_ID:higher:0.02`")
    for g in rows:
        held, opt, window = g.get("holdout") or {}, g.get("optimized") or {}, g.get("window") or {}
        lines += [f"{g.get('metric_name') or g.get('metric_id')}  [{(g.get('status') or '-').upper()}]",
                  f"  rule      {g.get('direction')} is better; may not lose more than {fraction(g.get('tolerance'))}",
                  f"  traffic   bandit {_text(opt.get('users'))} users, mean {_text(opt.get('mean'))}; "
                  f"holdout {_text(held.get('users'))} users, mean {_text(held.get('mean'))}",
                  f"  lift      {percent(g.get('lift_percent'), signed=True)} {interval(g.get('lift_ci'))} "
                  f"(always-valid p = {_p(g.get('p_value'))})",
                  f"  window    first exposures from {_text(window.get('from'))} to {_text(window.get('to'))}, "
                  f"{_text(window.get('conversion_window_hours'))}h after each", ""]
    stopped = stop_line(body)
    if stopped:
        lines.append(stopped)
    return "\n".join(lines).rstrip()


def report_tables(pack: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The report-data pack as tidy tables: name → (columns, rows)."""
    opt = pack.get("optimization") or {}
    config = opt.get("training_data_config") or {}
    factors = [f.get("name") for f in config.get("design_factors") or []]
    state = pack.get("state") or {}
    guard = pack.get("guardrails") or {}
    history = pack.get("lift_history") or []
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {
        "optimization": (["key", "value"], [[k, opt.get(k)] for k in (
            "id", "name", "model_type", "holdout_percentage", "variants_count", "created_at")]
            + [["reward_metric_id", (pack.get("reward_metric") or {}).get("id")],
               ["reward_metric_name", (pack.get("reward_metric") or {}).get("name")],
               ["reward_type", (pack.get("reward_metric") or {}).get("reward_type")],
               ["status", state.get("status")], ["model_version", state.get("model_version")],
               ["trained_at", state.get("trained_at")], ["auto_stop", guard.get("auto_stop")],
               ["stop_reason", (guard.get("stop_reason") or {}).get("reason")]]),
        "variants": (["variant_number", "variant_key", *factors],
                     [[v.get("number"), v.get("variant_key"), *[(v.get("variant") or {}).get(f) for f in factors]]
                      for v in pack.get("variants") or []]),
        "daily": (["date", "arm", "variant_number", "exposures", "conversions", "reward_sum"],
                  [[d.get(k) for k in ("date", "arm", "variant_number", "exposures", "conversions", "reward_sum")]
                   for d in pack.get("daily") or []]),
        "state_variants": (["variant_number", "exposures", "expected_reward_mean", "expected_reward_lo",
                            "expected_reward_hi", "prob_best", "allocation"],
                           [[v.get("number"), *[v.get(k) for k in ("exposures", "expected_reward_mean",
                                                                   "expected_reward_lo", "expected_reward_hi",
                                                                   "prob_best", "allocation")]]
                            for v in state.get("variants") or []]),
        "guardrails": (["metric_id", "metric_name", "direction", "tolerance", "status", "holdout_users",
                        "holdout_mean", "optimized_users", "optimized_mean", "lift_percent", "lift_ci_lower",
                        "lift_ci_upper", "p_value"],
                       [[g.get("metric_id"), g.get("metric_name"), g.get("direction"), g.get("tolerance"),
                         g.get("status"), (g.get("holdout") or {}).get("users"), (g.get("holdout") or {}).get("mean"),
                         (g.get("optimized") or {}).get("users"), (g.get("optimized") or {}).get("mean"),
                         g.get("lift_percent"), *((g.get("lift_ci") or [None, None])[:2]), g.get("p_value")]
                        for g in guard.get("guardrails") or []]),
        "lift_history": (["date", "model_version", "observations", "policy_lift_percent", "policy_lift_lower",
                          "policy_lift_upper", "best_number", "best_lift_percent", "best_lift_lower",
                          "best_lift_upper", "best_prob", "estimated_progress"],
                         [[p.get("date"), p.get("model_version"), p.get("observations"),
                           p.get("policy_lift_percent"), *((p.get("policy_lift_interval") or [None, None])[:2]),
                           p.get("best_number"), p.get("best_lift_percent"),
                           *((p.get("best_lift_interval") or [None, None])[:2]), p.get("best_prob"),
                           p.get("estimated_progress")] for p in history]),
    }
    return tables


def write_csv(pack: dict[str, Any], out: pathlib.Path) -> list[pathlib.Path]:
    """Write one CSV per tidy table into ``out`` (created); return the files written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the directory ({exc.strerror})") from None
    written = []
    for name, (columns, rows) in report_tables(pack).items():
        path = out / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows([["" if v is None else v for v in row] for row in rows])
        written.append(path)
    return written
