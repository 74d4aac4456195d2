"""Text views of API objects for people: optimization details, results, model state.

Shared by every command group that shows these objects (the CLI commands and the dashboard),
so each renders the same way. Input is the API body as received; output is plain text.
"""

from __future__ import annotations

from typing import Any

from levered_core import humanize as h


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


def optimization(opt: dict[str, Any], metric_name: str | None = None) -> str:
    """Render ``optimizations show``: identity, model, metric, factors, summary, winner."""
    config = opt["training_data_config"]
    reward, attribution = config.get("reward", {}), config.get("attribution", {})
    model = f"{opt['model_type']} model {opt.get('model_status') or 'deleted'}"
    if opt.get("model_id"):
        model += f" ({h.short_id(opt['model_id'])})"
    metric = f"{metric_name} ({h.short_id(opt['reward_metric_id'])})" if metric_name else opt["reward_metric_id"]
    lines = [f"{opt['name']}  ({opt['id']})", ""]
    lines += _pairs([
        ("Status", opt["status"]), ("Model", model), ("Metric", metric),
        ("Reward", f"{reward.get('name', 'reward')} ({reward.get('type', '?')})"),
        ("Holdout", f"{opt['holdout_percentage']}% of users see the baseline"),
        ("Attribution", f"last touch within {attribution.get('conversion_window_hours', '?')}h"),
        ("Created", f"{opt['created_at']} ({h.ago(opt['created_at'])})"),
        ("Updated", f"{opt['updated_at']} ({h.ago(opt['updated_at'])})"),
    ])
    lines += ["", f"Design factors ({opt['variants_count']} variants served; * = baseline)"]
    lines += _table(["FACTOR", "LEVELS"], [[f["name"], " | ".join(
        f"{level}*" if i == 0 else str(level) for i, level in enumerate(f["levels"]))]
        for f in config["design_factors"]])
    if opt.get("excluded_combinations"):
        lines += ["", "Excluded combinations"] + [f"  {h.variant_label(c)}" for c in opt["excluded_combinations"]]
    if config.get("context_factors"):
        lines += ["", "Context factors"] + _table(["FACTOR", "DECLARED LEVELS"], [
            [f["name"], ", ".join(map(str, f.get("levels") or [])) or "(any)"] for f in config["context_factors"]])
    summary = opt.get("summary")
    lines += ["", "Summary: " + (f"lift {h.percent(summary.get('lift'), signed=True)}, confidence "
                                  f"{h.fraction(summary.get('confidence'))}, {summary.get('exposures')} exposures"
                                  if summary else "not trained yet")]
    if opt.get("winner"):
        winner = opt["winner"]
        lines.append(f"Winner: #{winner['variant_number']} {h.variant_label(winner['variant'])}")
    return "\n".join(lines)


def variants(rows: list[dict[str, Any]], with_rates: bool) -> list[str]:
    """The per-variant table of results and model state, with P(best) and weight bars."""
    header = ["#", "VARIANT", "EXPOSURES"] + (["RATE"] if with_rates else []) + [
        "EXPECTED", "95% INTERVAL", "P(BEST)", "", "WEIGHT"]
    body = []
    for v in rows:
        interval = ("" if v.get("expected_reward_lo") is None
                    else f"[{h.number(v['expected_reward_lo'])}, {h.number(v['expected_reward_hi'])}]")
        body.append([str(v["number"]), h.variant_label(v["variant"]), str(v.get("exposures", 0))]
                    + ([h.fraction(v.get("rate"), 2)] if with_rates else [])
                    + [h.number(v.get("expected_reward_mean")), interval, h.fraction(v.get("prob_best")),
                       h.bar(v.get("prob_best"), 12), h.fraction(v.get("weight"))])
    return _table(header, body, right={0, 2, 3} if with_rates else {0, 2})


def _importance(entries: list[dict[str, Any]]) -> list[str]:
    if not entries:
        return ["  (none yet)"]
    top = max(e["mean"] for e in entries) or 1.0
    return _table(["FACTOR", "KIND", "MEAN", "Q1-Q3", ""], [
        [e["factor"], e.get("kind", ""), h.number(e["mean"]), f"{h.number(e['q1'])}-{h.number(e['q3'])}",
         h.bar(e["mean"] / top, 16)] for e in entries])


def results(res: dict[str, Any]) -> str:
    """Render ``optimizations results``: measured and estimated lift, SRM, variants, importance."""
    lines = [f"Results of {res['optimization_id']} ({res['status']}; model version {res['model_version']}, "
             f"trained {h.ago(res.get('trained_at'))})", ""]
    measured = res.get("primary_metric_vs_holdout") or {}
    if measured.get("lift_percent") is not None:
        ci = h.interval(measured.get("lift_ci")) or "(interval after 100 users per arm)"
        p = f", p = {measured['p_value']:.3f}" if measured.get("p_value") is not None else ""
        lines.append(f"Measured     {h.percent(measured['lift_percent'], signed=True)} {ci}{p} vs holdout "
                     f"({measured['optimization_exposures']} vs {measured['holdout_exposures']} users)")
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
        lines.append(f"WARNING: sample ratio mismatch (p = {srm['p_value']:.2g}): holdout {srm['observed']['holdout']}"
                     f" vs optimized {srm['observed']['optimized']} users; do not trust the measured lift")
    leader = max(res["variants"], key=lambda v: v.get("weight") or 0, default=None)
    if leader is not None and res.get("model_version"):
        verdict = "clear winner" if (leader.get("weight") or 0) >= 0.7 else "inconclusive so far"
        lines.append(f"Leader       #{leader['number']} {h.variant_label(leader['variant'])} ({verdict})")
    lines += ["", "Variants"] + variants(res["variants"], with_rates=True)
    lines += ["", "Factor importance"] + _importance(res.get("factor_importance") or [])
    return "\n".join(lines)


def model_state(state: dict[str, Any]) -> str:
    """Render ``models state``: version, last run, and the per-variant posterior."""
    run = state.get("last_run") or {}
    version = (f"{state['version']}, trained {h.ago(state.get('trained_at'))} on {state['observations']} observations"
               if state.get("version") else
               f"none: not trained yet; train it with `levered models train {h.short_id(state['model_id'])}`")
    lines = _pairs([
        ("Model", f"{state['model_id']} ({state['model_type']}, {state['status']})"),
        ("Optimization", state["optimization_id"]),
        ("Version", version),
        ("Last run", f"{run.get('outcome', 'never')} ({run.get('trigger', '-')}, {h.ago(run.get('finished_at'))})"
         if run else "never"),
    ])
    if state.get("error"):
        lines.append(f"Last error    {state['error']['message']} ({state['error']['code']})")
    lines += ["", "Variants"] + variants(state["variants"], with_rates=False)
    return "\n".join(lines)
