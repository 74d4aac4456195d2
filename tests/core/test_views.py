"""Text views against the contract's own examples (docs/api.md 6.6 and 8.4)."""

from __future__ import annotations

import re

from levered_core import views

VARIANTS = [
    (1, "Ship faster", "Get started", 720, 0.100, 0.081, 0.121, 0.01, 0.009, 0.012),
    (2, "Ship faster", "Try it free", 410, 0.104, 0.079, 0.131, 0.05, 0.045, 0.048),
    (3, "Build better", "Get started", 1650, 0.118, 0.103, 0.134, 0.62, 0.558, 0.605),
    (4, "Build better", "Try it free", 1010, 0.112, 0.094, 0.131, 0.30, 0.27, 0.315),
    (5, "Scale up", "Get started", 310, 0.097, 0.068, 0.129, 0.02, 0.018, 0.020),
]


def variants():
    return [{"number": n, "variant": {"headline": h, "cta_text": c}, "exposures": e, "rate": m,
             "expected_reward_mean": m, "expected_reward_lo": lo, "expected_reward_hi": hi, "prob_best": p, "weight": w,
             "allocation": a}
            for n, h, c, e, m, lo, hi, p, w, a in VARIANTS]


RESULTS = {
    "optimization_id": "699ede80-c94b-4f98-9c79-dd3e07748703", "status": "live", "model_version": 12,
    "trained_at": None, "holdout_percentage": 10, "variants": variants(),
    "stats": {"estimated_improvement_percent": 14.8, "estimated_improvement_interval": [3.1, 27.4],
              "best_vs_baseline_percent": 18.0, "best_vs_baseline_interval": [4.2, 32.9]},
    "primary_metric_vs_holdout": {"lift_percent": 21.77, "lift_ci": [-22.04, 65.58], "p_value": 0.3301,
                                  "optimization_exposures": 2710, "holdout_exposures": 290},
    "srm": {"p_value": 0.5428, "ok": True, "observed": {"holdout": 290, "optimized": 2710}},
    "factor_importance": [{"factor": "headline", "mean": 0.0172, "q1": 0.0128, "q3": 0.0214, "kind": "design"},
                          {"factor": "cta_text", "mean": 0.0046, "q1": 0.0019, "q3": 0.0070, "kind": "design"}],
}


def test_results_show_measured_and_estimated_lift_with_intervals():
    text = views.results(RESULTS)
    assert "Measured     +21.8% [-22.0%, +65.6%], p = 0.330 vs holdout (2710 vs 290 users)" in text
    assert "Lift (now)   +14.8% [+3.1%, +27.4%]" in text
    assert "Lift (best)  +18.0% [+4.2%, +32.9%]" in text
    assert "Leader       #3 headline=Build better, cta_text=Get started (inconclusive so far)" in text
    assert "sample ratio mismatch" not in text


def test_results_add_the_propensity_weighted_lift_when_the_server_reports_it():
    weighted = {**RESULTS, "stats": {**RESULTS["stats"], "best_vs_baseline_weighted_percent": 16.5,
                                     "best_vs_baseline_weighted_interval": [-1.2, 34.2]}}
    assert ("  weighted   +16.5% [-1.2%, +34.2%] (same variant, from the logged propensities)"
            in views.results(weighted))
    assert "weighted" not in views.results(RESULTS)


def test_results_rank_factor_importance_with_bars():
    text = views.results(RESULTS)
    lines = text.split("Factor importance\n")[1].splitlines()
    assert lines[1].split()[0] == "headline" and lines[2].split()[0] == "cta_text"
    assert lines[1].count("█") > lines[2].count("█")


def test_variant_rows_carry_p_best_and_the_traffic_the_policy_serves():
    table = views.results(RESULTS).split("Variants\n")[1].split("\n\n")[0].splitlines()
    assert re.match(r"^\s+#\s+VARIANT\s+EXPOSURES\s+RATE\s+EXPECTED\s+95% INTERVAL\s+P\(BEST\)\s+TRAFFIC$", table[0])
    row3 = next(line for line in table if line.strip().startswith("3 "))
    assert "62.0%" in row3 and "60.5%" in row3 and "[0.103, 0.134]" in row3 and "1650" in row3
    assert "55.8%" not in row3  # weight = P(best) x (1 - holdout): not a share of what is served
    assert table[-1] == ("  P(BEST): chance it is the best variant. TRAFFIC: its share of optimized traffic now; "
                         "the 10% holdout all see #1.")


def test_traffic_is_a_dash_when_the_server_sends_no_allocation():
    rows = [{k: v for k, v in variant.items() if k != "allocation"} for variant in variants()]
    row3 = views.variants(rows, with_rates=False)[3]
    assert row3.split()[-1] == "-" and "62.0%" in row3


def test_results_and_state_with_no_fields_at_all_show_dashes():
    results = views.results({}).splitlines()
    assert results[0] == "Results of - (-; model version -, trained -)"
    assert "Measured     -" in results and "Lift (best)  -" in results and "  (none yet)" in results
    state = views.model_state({"meta": {}}).splitlines()
    assert state[:4] == ["Model         - (-, -)", "Optimization  -", "Version       -", "Last run      never"]


def test_the_optimization_view_reads_the_nested_shape_and_shows_dashes_for_the_rest():
    nested = {"optimization": {"id": RESULTS["optimization_id"], "name": "Hero", "status": "live",
                               "model_status": "trained", "reward_conversion_window": 24},
              "model_config": {"model_type": "cmab", "design_factors": [{"name": "headline", "levels": ["A", "B"]}]}}
    lines = views.optimization(nested).splitlines()
    for line in ("Hero  (699ede80-c94b-4f98-9c79-dd3e07748703)", "Model        cmab model trained", "Metric       -",
                 "Reward       -", "Holdout      -", "Attribution  conversion window 24", "Created      -",
                 "Design factors (* = baseline)", "  headline  A* | B", "Summary: not trained yet"):
        assert line in lines, lines


def test_a_sample_ratio_mismatch_is_a_warning():
    broken = {**RESULTS, "srm": {"p_value": 0.00001, "ok": False, "observed": {"holdout": 100, "optimized": 2900}}}
    assert "WARNING: sample ratio mismatch" in views.results(broken)


def test_untrained_results_say_so():
    untrained = {**RESULTS, "model_version": 0, "stats": None, "primary_metric_vs_holdout": None,
                 "factor_importance": [], "srm": None}
    text = views.results(untrained)
    assert "Measured     not available yet" in text and "Lift (now)   -" in text and "(none yet)" in text
    assert "Leader" not in text


STATE = {"model_id": "4754cae0-9a5d-4691-91af-6d15ccc1f82e", "optimization_id": RESULTS["optimization_id"],
         "model_type": "cmab", "status": "trained", "version": 12, "trained_at": "2026-11-21T12:00:00Z",
         "observations": 4100, "error": None, "variants": variants(),
         "last_run": {"outcome": "succeeded", "trigger": "schedule", "finished_at": "2026-11-21T12:00:00Z"}}


def test_model_state_shows_the_version_and_its_training():
    text = views.model_state(STATE)
    assert re.search(r"^Version       12, trained (\S+ ago|\d{4}-\d\d-\d\d) on 4100 observations$", text, re.M), text
    assert re.search(r"^Last run      succeeded \(schedule, ", text, re.M)


def test_an_untrained_model_says_so_and_how_to_train_it():
    untrained = {**STATE, "status": "untrained", "version": 0, "trained_at": None, "observations": 0,
                 "last_run": None, "variants": [{**v, "exposures": 0, "expected_reward_mean": None,
                                                 "expected_reward_lo": None, "expected_reward_hi": None}
                                                for v in variants()]}
    text = views.model_state(untrained)
    assert "Version       none: not trained yet; train it with `levered models train 4754cae0`" in text
    assert "trained -" not in text and "on 0 observations" not in text
    assert "Last run      never" in text
