"""The detail screen's panels, in the pure layer: one optimization's bodies in, lines of text out.

Each panel is a function of (item, inner width, now) returning lines that fit the width; each
survives a body it does not understand by saying "not available" instead of raising.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from levered_core.plugin_api import ago, bar, fraction, interval, number, percent, short_id
from levered_dashboard import views
from levered_dashboard.data import Item, Snapshot

#: The panels' titles, in the order the detail screen shows them.
PANEL_TITLES = ("Allocation", "Reward rate", "Lift", "Factor importance", "Over time", "Model")


def _safe(panel: Callable[..., list[str]]) -> Callable[..., list[str]]:
    @functools.wraps(panel)
    def wrapper(*args: Any) -> list[str]:
        try:
            return panel(*args)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError):
            return ["not available: unexpected response shape"]
    return wrapper


def _name_width(variants: list[dict[str, Any]], width: int) -> int:
    return min(max((len(views.variant_name(v)) for v in variants), default=4), max(12, width // 3))


@_safe
def allocation_lines(item: Item, width: int, now: dt.datetime | None = None) -> list[str]:
    """P(best) and traffic (the serving allocation: share of optimized traffic) as horizontal bars.

    ``weight`` is not drawn: it is P(best) scaled by the holdout share, not what is served.
    """
    variants = views.variants_of(item)
    if not variants:
        return [item.state_error or item.results_error or "not available"]
    names = min(max(len(views.variant_name(v)) for v in variants), max(12, width - 32 - 12))
    bar_width = max(4, min(24, (width - names - 32) // 2))
    best = views.leader(item)
    lines = []
    for v in variants:
        mark = ">" if best is not None and v.get("number") == best.get("number") else " "
        p_best, traffic = v.get("prob_best"), v.get("allocation")
        lines.append(f"{mark}{views.clip(views.variant_name(v), names):<{names}} P(best) {bar(p_best, bar_width):<{bar_width}}"
                     f"{fraction(p_best):>6}  traffic {bar(traffic, bar_width):<{bar_width}}{fraction(traffic):>6}")
    holdout = item.optimization.get("holdout_percentage")
    note = "untrained: equal shares" if not views.is_trained(item) else "> leader"
    share = "share of optimized traffic" if holdout is None else f"holdout {holdout}% see #1; traffic = share of the rest"
    lines.append(f"{note}; {share}")
    return lines


def _rate(value: Any, reward_type: str) -> str:
    if value is None:
        return "-"
    return fraction(value, 2) if reward_type == "bool" else number(value)


def interval_strip(lo: float | None, mean: float | None, hi: float | None, scale: tuple[float, float],
                   width: int) -> str:
    """``  ├──●───┤  ``: an interval drawn on a shared scale."""
    if lo is None or hi is None or mean is None or width < 3 or scale[1] <= scale[0]:
        return ""
    def at(x: float) -> int:
        return max(0, min(width - 1, round((x - scale[0]) / (scale[1] - scale[0]) * (width - 1))))
    cells = [" "] * width
    a, b = at(lo), at(hi)
    for i in range(a, b + 1):
        cells[i] = "─"
    cells[a], cells[b] = "├", "┤"
    cells[at(mean)] = "●"
    return "".join(cells)


@_safe
def reward_lines(item: Item, width: int, now: dt.datetime | None = None) -> list[str]:
    """Observed reward rate per variant and the posterior expected reward with its 95% interval."""
    results = item.results
    variants = (results or {}).get("variants") or views.variants_of(item)
    if not variants:
        return [item.results_error or "not available"]
    reward_type = (results or {}).get("reward_type") or "bool"
    names = _name_width(variants, width)
    header = f" {'variant':<{names}} {'exposed':>7} {'rate':>7} {'expected':>8} {'95% interval':<17}"
    lows = [v["expected_reward_lo"] for v in variants if v.get("expected_reward_lo") is not None]
    highs = [v["expected_reward_hi"] for v in variants if v.get("expected_reward_hi") is not None]
    strip = width - len(header) - 1
    lines = [header.rstrip()]
    for v in variants:
        lo, hi = v.get("expected_reward_lo"), v.get("expected_reward_hi")
        bounds = f"[{_rate(lo, reward_type)}, {_rate(hi, reward_type)}]" if lo is not None else ""
        drawn = interval_strip(lo, v.get("expected_reward_mean"), hi, (min(lows), max(highs)), strip) if lows else ""
        lines.append(f" {views.clip(views.variant_name(v), names):<{names}} {views.count(v.get('exposures')):>7} "
                     f"{_rate(v.get('rate'), reward_type):>7} {_rate(v.get('expected_reward_mean'), reward_type):>8} "
                     f"{bounds:<17} {drawn}".rstrip())
    if item.results_error:
        lines.append(f"observed rates {item.results_error}")
    return lines


@_safe
def lift_lines(item: Item, width: int, now: dt.datetime | None = None) -> list[str]:
    """Measured lift against the holdout, the model's lift estimates and the sample-ratio check."""
    if not item.results:
        return [item.results_error or "not available"]
    measured = item.results.get("primary_metric_vs_holdout") or {}
    lines = []
    if measured.get("lift_percent") is not None:
        p = f"  p = {measured['p_value']:.3f}" if measured.get("p_value") is not None else ""
        ci = interval(measured.get("lift_ci")) or "[interval after 100 users per arm]"
        lines.append(f"Measured vs holdout  {percent(measured['lift_percent'], signed=True)} {ci}{p}")
    else:
        lines.append("Measured vs holdout  not available yet (needs holdout users who convert)")
    if measured:
        lines.append(f"  optimized {_rate(measured.get('optimization_rate'), 'bool')} of "
                     f"{measured.get('optimization_exposures', 0)} users · holdout "
                     f"{_rate(measured.get('holdout_rate'), 'bool')} of {measured.get('holdout_exposures', 0)} users")
    stats = item.results.get("stats") or {}
    now_lift = views.lift_text(stats.get("estimated_improvement_percent"), stats.get("estimated_improvement_interval"), False)
    best_lift = views.lift_text(stats.get("best_vs_baseline_percent"), stats.get("best_vs_baseline_interval"), False)
    progress = stats.get("estimated_progress")
    tail = f"  progress {fraction(progress, 0)}" if progress is not None else ""
    lines += [f"Lift now (policy)    {now_lift}", f"Lift best variant    {best_lift}{tail}"]
    lines += history_lines(item, width) + stop_lines(item, now)
    srm = item.results.get("srm") or {}
    if srm.get("ok") is False:
        lines.append(f"Sample ratio         MISMATCH (p = {srm.get('p_value', 0):.2g}): do not trust the measured lift")
    elif srm.get("ok"):
        lines.append(f"Sample ratio         ok (p = {srm.get('p_value', 0):.2f})")
    else:
        lines.append("Sample ratio         not checked yet (needs 100 users and a holdout)")
    if item.results_error:
        lines.append(f"(last results {item.results_error})")
    return lines


def history_lines(item: Item, width: int) -> list[str]:
    """Sparklines of the stored daily lift estimates (none where the server keeps no history)."""
    points = (item.lift_history or {}).get("points") or []
    if not points:
        return []
    days = points[-max(4, width - 36):]
    lines = []
    for label, key in (("policy", "policy_lift_percent"), ("best", "best_lift_percent")):
        values = [p.get(key) for p in days]
        known = [v for v in values if v is not None]
        if known:
            # Scaled between the smallest and largest day; the smallest still draws (▁), not blank.
            floor, span = min(known), (max(known) - min(known)) or 1.0
            drawn = views.sparkline([v - floor + span / 8 for v in known], span * 9 / 8)
            lines.append(f"Lift history ({label:<6}) {drawn}  {percent(known[-1], signed=True)} "
                         f"({len(days)} day(s))")
    return lines


def stop_lines(item: Item, now: dt.datetime | None = None) -> list[str]:
    """Why a guardrail stopped the optimization, if one did."""
    reason = (item.guardrails or {}).get("stop_reason")
    if not reason:
        return []
    name = reason.get("metric_name") or short_id(reason.get("metric_id"))
    return [f"STOPPED by guardrail {name}: lift {percent(reason.get('lift_percent'), signed=True)}, "
            f"p = {reason.get('p_value', 0):.2g} ({ago(reason.get('stopped_at'), now)})"]


@_safe
def importance_lines(item: Item, width: int, now: dt.datetime | None = None) -> list[str]:
    """How much each factor moves expected reward, as bars relative to the strongest."""
    entries = (item.results or {}).get("factor_importance") or (item.state or {}).get("factor_importance") or []
    if not entries:
        return ["none yet (after the first training)" if not (item.results_error and item.state_error)
                else item.results_error or "not available"]
    interaction = (item.results or {}).get("interaction_importance")
    labels = [str(e["factor"]) for e in entries] + (["interactions"] if interaction else [])
    names = min(max(len(label) for label in labels), 20)  # the bars start in one column
    bar_width = max(4, min(30, width - names - 34))
    top = max(e["mean"] for e in entries) or 1.0
    lines = [f"{views.clip(str(e['factor']), names):<{names}} {e.get('kind', ''):<7} {bar(e['mean'] / top, bar_width)} "
             f"{number(e['mean'], 3)} ({number(e.get('q1'), 2)}–{number(e.get('q3'), 2)})" for e in entries]
    if interaction:
        lines.append(f"{'interactions':<{names}} {'':<7} {bar(interaction['mean'] / top, bar_width)} "
                     f"{number(interaction['mean'], 3)}")
    return lines


@_safe
def timeline_lines(item: Item, width: int, now: dt.datetime | None = None) -> list[str]:
    """Sparklines of exposures per day and of each variant's share of optimized exposures."""
    series = (item.results or {}).get("time_series") or []
    if not series:
        return [item.results_error or "no exposures yet"]
    variants = (item.results or {}).get("variants") or []
    names = _name_width(variants, width) if variants else 12
    days = series[-max(4, width - names - 12):]
    exposures = [float(d.get("exposures") or 0) for d in days]
    span = f"{days[0]['date']} → {days[-1]['date']}" if len(days) > 1 else str(days[0]["date"])
    lines = [f"{'exposures/day':<{names + 1}} {views.sparkline(exposures)}  max {views.count(max(exposures))}",
             f"{'':<{names + 1}} {len(days)} day(s): {span}", "share of optimized exposures per day:"]
    baseline = next((v.get("variant_key") for v in variants if v.get("number") == 1), None)
    for v in variants:
        shares = []
        for d in days:
            served = (d.get("exposures") or 0) - (d.get("holdout_exposures") or 0)
            mine = ((d.get("variants") or {}).get(v.get("variant_key")) or {}).get("exposures") or 0
            if v.get("variant_key") == baseline:
                mine -= d.get("holdout_exposures") or 0  # holdout users are shown #1 too
            shares.append(max(0.0, mine / served) if served > 0 else 0.0)
        lines.append(f" {views.clip(views.variant_name(v), names):<{names}} {views.sparkline(shares, 1.0)}  "
                     f"{fraction(shares[-1], 0):>4} last day")
    return lines


@_safe
def model_lines(item: Item, width: int, now: dt.datetime | None = None) -> list[str]:
    """The model state: version, when it trained, and how its last training run went."""
    state = item.state
    if not state:
        return [item.state_error or "not available"]
    trained_at = state.get("trained_at")
    lines = [f"Model        {short_id(state.get('model_id'))} ({state.get('model_type')}, {state.get('status')})",
             f"Version      {state.get('version')}",
             f"Trained at   {trained_at.replace('T', ' ') + ' (' + ago(trained_at, now) + ')' if trained_at else 'never'}"
             f" on {state.get('observations', 0)} observations"]
    run = state.get("last_run")
    if run:
        finished = ago(run.get("finished_at"), now) if run.get("finished_at") else "running"
        lines.append(f"Last run     {run.get('outcome')} ({run.get('trigger')}, {finished}, "
                     f"{run.get('observations')} observations)")
        if run.get("error"):
            lines.append(f"Run error    {run['error'].get('message') if isinstance(run['error'], dict) else run['error']}")
    else:
        lines.append("Last run     never")
    if state.get("error"):
        lines.append(f"Last error   {state['error'].get('message')} ({state['error'].get('code')})")
    if item.state_error:
        lines.append(f"(last state {item.state_error})")
    return lines


PANELS: tuple[Callable[[Item, int, dt.datetime | None], list[str]], ...] = (
    allocation_lines, reward_lines, lift_lines, importance_lines, timeline_lines, model_lines)


def panels(item: Item, width: int, now: dt.datetime | None = None) -> list[tuple[str, list[str]]]:
    """Every detail panel as (title, lines), for a panel ``width`` characters wide inside."""
    return [(title, [views.clip(line, width) for line in panel(item, width, now)])
            for title, panel in zip(PANEL_TITLES, PANELS, strict=True)]


def detail_frame(snapshot: Snapshot, item: Item, width: int, refresh: float, now: float) -> str:
    """The detail screen of one optimization as plain text (``--once``)."""
    lines = [views.clip(views.title_line(item), width)]
    for title, panel_lines in panels(item, width - 2):
        lines += ["", f"── {title} " + "─" * max(0, width - len(title) - 4)]
        lines += [f"  {text}".rstrip() for text in panel_lines]
    return "\n".join([*lines, "", views.status_line(snapshot, refresh, now)])
