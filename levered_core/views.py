"""Text views of API objects for people: optimization details, results, model state.

Shared by every command group that shows these objects (the CLI commands and the dashboard),
so each renders the same way. Input is the API body as received; output is plain text.
"""

from __future__ import annotations

from typing import Any

from levered_core import humanize as h
from levered_core import shapes


def _pairs(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


def _table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    def line(cells: list[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=False))).rstrip()
    return ["  " + line(header), *("  " + line(row) for row in rows)]


def _text(value: Any) -> str:
    """A field as text; ``-`` when the server left it out (or sent null)."""
    return "-" if value is None else str(value)


def _when(value: str | None) -> str:
    return f"{value} ({h.ago(value)})" if value else "-"


def _attribution(opt: dict[str, Any], attribution: dict[str, Any]) -> str:
    hours = attribution.get("conversion_window_hours")
    if hours is not None:
        return f"last touch within {hours}h"
    window = opt.get("reward_conversion_window")  # the hosted nested shape's name, in its own units
    return "-" if window is None else f"conversion window {window}"


def optimization(body: dict[str, Any], metric_name: str | None = None) -> str:
    """Render ``optimizations show``: identity, model, metric, factors, summary, winner.

    :param body: the get or create response as received, flat or nested
        (:func:`levered_core.shapes.optimization`); a field the server left out shows ``-``.
    :param metric_name: the reward metric's name, if it could be looked up.
    """
    opt = shapes.optimization(body)
    config = opt.get("training_data_config") or {}
    reward, attribution = config.get("reward") or {}, config.get("attribution") or {}
    status = opt.get("model_status") or ("deleted" if "model_status" in opt else "-")
    model = f"{_text(opt.get('model_type'))} model {status}"
    if opt.get("model_id"):
        model += f" ({h.short_id(opt['model_id'])})"
    metric_id = opt.get("reward_metric_id")
    metric = f"{metric_name} ({h.short_id(metric_id)})" if metric_name and metric_id else _text(metric_id)
    holdout = opt.get("holdout_percentage")
    lines = [f"{_text(opt.get('name'))}  ({_text(opt.get('id'))})", ""]
    lines += _pairs([
        ("Status", _text(opt.get("status"))), ("Model", model), ("Metric", metric),
        ("Reward", f"{reward.get('name') or 'reward'} ({reward.get('type') or '-'})" if reward else "-"),
        ("Holdout", "-" if holdout is None else f"{holdout}% of users see the baseline"),
        ("Attribution", _attribution(opt, attribution)),
        ("Created", _when(opt.get("created_at"))), ("Updated", _when(opt.get("updated_at"))),
    ])
    count = opt.get("variants_count")  # not in the hosted documentation
    lines += ["", f"Design factors ({count} variants served; * = baseline)" if count is not None
              else "Design factors (* = baseline)"]
    factors = config.get("design_factors") or []
    lines += _table(["FACTOR", "LEVELS"], [[_text(f.get("name")), " | ".join(
        f"{level}*" if i == 0 else str(level) for i, level in enumerate(f.get("levels") or []))]
        for f in factors]) if factors else ["  -"]
    if opt.get("excluded_combinations"):
        lines += ["", "Excluded combinations"] + [f"  {h.variant_label(c)}" for c in opt["excluded_combinations"]]
    if config.get("context_factors"):
        lines += ["", "Context factors"] + _table(["FACTOR", "DECLARED LEVELS"], [
            [_text(f.get("name")), ", ".join(map(str, f.get("levels") or [])) or "(any)"]
            for f in config["context_factors"]])
    summary = opt.get("summary")
    lines += ["", "Summary: " + (f"lift {h.percent(summary.get('lift'), signed=True)}, confidence "
                                  f"{h.fraction(summary.get('confidence'))}, {_text(summary.get('exposures'))} exposures"
                                  if summary else "not trained yet")]
    if opt.get("winner"):
        winner = opt["winner"]
        lines.append(f"Winner: #{_text(winner.get('variant_number'))} {h.variant_label(winner.get('variant') or {})}")
    return "\n".join(lines)


def variants(rows: list[dict[str, Any]], with_rates: bool) -> list[str]:
    """The per-variant table of results and model state: P(best) with its bar, and the traffic.

    TRAFFIC is ``allocation``, the share of optimized traffic the serving policy sends each
    variant. ``weight`` is not shown: it is P(best) scaled by the holdout share, not what is served.
    """
    header = ["#", "VARIANT", "EXPOSURES"] + (["RATE"] if with_rates else []) + [
        "EXPECTED", "95% INTERVAL", "P(BEST)", "", "TRAFFIC"]
    body = []
    for v in rows:
        lo, hi = v.get("expected_reward_lo"), v.get("expected_reward_hi")
        interval = "" if lo is None or hi is None else f"[{h.number(lo)}, {h.number(hi)}]"
        body.append([_text(v.get("number")), h.variant_label(v.get("variant") or {}) or "-", _text(v.get("exposures"))]
                    + ([h.fraction(v.get("rate"), 2)] if with_rates else [])
                    + [h.number(v.get("expected_reward_mean")), interval, h.fraction(v.get("prob_best")),
                       h.bar(v.get("prob_best"), 12), h.fraction(v.get("allocation"))])
    return _table(header, body, right={0, 2, 3} if with_rates else {0, 2})


def _legend(holdout: Any) -> str:
    seen = "" if holdout is None else f"; the {holdout}% holdout all see #1"
    return f"  P(BEST): chance it is the best variant. TRAFFIC: its share of optimized traffic now{seen}."


def _importance(entries: list[dict[str, Any]]) -> list[str]:
    if not entries:
        return ["  (none yet)"]
    top = max(e.get("mean") or 0.0 for e in entries) or 1.0
    return _table(["FACTOR", "KIND", "MEAN", "Q1-Q3", ""], [
        [_text(e.get("factor")), e.get("kind", ""), h.number(e.get("mean")), f"{h.number(e.get('q1'))}-{h.number(e.get('q3'))}",
         h.bar((e.get("mean") or 0.0) / top, 16)] for e in entries])


def _leader(rows: list[dict[str, Any]]) -> str:
    def score(v: dict[str, Any]) -> float:
        value = v.get("weight") if v.get("weight") is not None else v.get("prob_best")
        return float(value or 0.0)
    best = max(rows, key=score)
    # Levered's documented rule for calling a winner: the highest weight, clear from 0.7.
    verdict = "clear winner" if score(best) >= 0.7 else "inconclusive so far"
    return f"Leader       #{_text(best.get('number'))} {h.variant_label(best.get('variant') or {})} ({verdict})"


def results(res: dict[str, Any]) -> str:
    """Render ``optimizations results``: measured and estimated lift, SRM, variants, importance.

    A field the server left out shows ``-`` (or its line says "not available").
    """
    lines = [f"Results of {_text(res.get('optimization_id'))} ({_text(res.get('status'))}; model version "
             f"{_text(res.get('model_version'))}, trained {h.ago(res.get('trained_at'))})", ""]
    measured = res.get("primary_metric_vs_holdout") or {}
    if measured.get("lift_percent") is not None:
        ci = h.interval(measured.get("lift_ci")) or "(interval after 100 users per arm)"
        p = f", p = {measured['p_value']:.3f}" if measured.get("p_value") is not None else ""
        lines.append(f"Measured     {h.percent(measured['lift_percent'], signed=True)} {ci}{p} vs holdout "
                     f"({_text(measured.get('optimization_exposures'))} vs {_text(measured.get('holdout_exposures'))} users)")
    elif "primary_metric_vs_holdout" not in res:
        lines.append("Measured     -")
    else:
        lines.append("Measured     not available yet (needs holdout users with conversions)")
    stats = res.get("stats") or {}
    lines.append(f"Lift (now)   {h.percent(stats.get('estimated_improvement_percent'), signed=True)} "
                 f"{h.interval(stats.get('estimated_improvement_interval'))}".rstrip())
    lines.append(f"Lift (best)  {h.percent(stats.get('best_vs_baseline_percent'), signed=True)} "
                 f"{h.interval(stats.get('best_vs_baseline_interval'))}".rstrip())
    if stats.get("best_vs_baseline_weighted_percent") is not None:
        lines.append(f"  weighted   {h.percent(stats['best_vs_baseline_weighted_percent'], signed=True)} "
                     f"{h.interval(stats.get('best_vs_baseline_weighted_interval'))} "
                     "(same variant, from the logged propensities)")
    srm = res.get("srm") or {}
    if srm.get("ok") is False:
        observed, p_srm = srm.get("observed") or {}, srm.get("p_value")
        lines.append(f"WARNING: sample ratio mismatch (p = {'-' if p_srm is None else f'{p_srm:.2g}'}): holdout "
                     f"{_text(observed.get('holdout'))} vs optimized {_text(observed.get('optimized'))} users; "
                     "do not trust the measured lift")
    rows = res.get("variants") or []
    if rows and res.get("model_version"):
        lines.append(_leader(rows))
    lines += ["", "Variants"] + (variants(rows, with_rates=True) + [_legend(res.get("holdout_percentage"))]
                                 if rows else ["  -"])
    lines += ["", "Factor importance"] + _importance(res.get("factor_importance") or [])
    return "\n".join(lines)


def model_state(state: dict[str, Any]) -> str:
    """Render ``models state``: version, last run, and the per-variant posterior (``-`` where absent)."""
    run = state.get("last_run") or {}
    version = (f"{state['version']}, trained {h.ago(state.get('trained_at'))} on {_text(state.get('observations'))} "
               "observations" if state.get("version") else "-" if "version" not in state else
               f"none: not trained yet; train it with `levered models train {h.short_id(state.get('model_id')) or 'ID'}`")
    lines = _pairs([
        ("Model", f"{_text(state.get('model_id'))} ({_text(state.get('model_type'))}, {_text(state.get('status'))})"),
        ("Optimization", _text(state.get("optimization_id"))),
        ("Version", version),
        ("Last run", f"{run.get('outcome', 'never')} ({run.get('trigger', '-')}, {h.ago(run.get('finished_at'))})"
         if run else "never"),
    ])
    error = state.get("error")
    if error:
        lines.append(f"Last error    {error.get('message', '-')} ({error.get('code', '-')})" if isinstance(error, dict)
                     else f"Last error    {error}")
    rows = state.get("variants") or []
    lines += ["", "Variants"] + (variants(rows, with_rates=False) + [_legend(state.get("holdout_percentage"))]
                                 if rows else ["  -"])
    return "\n".join(lines)
