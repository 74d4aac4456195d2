"""The detail panels on docs/api.md's example bodies: what each panel says, and that none can crash."""

from __future__ import annotations

import datetime as dt

import pytest
from levered_dashboard import panels, views
from levered_dashboard.data import Item, Snapshot

from tests.dashboard.examples import bodies

NOW = dt.datetime(2026, 11, 21, 12, 5, tzinfo=dt.UTC)


@pytest.fixture
def item() -> Item:
    optimization, results, state = bodies()
    return Item(optimization, results, state)



def test_allocation_bars_follow_p_best_and_the_traffic_served(item):
    lines = panels.allocation_lines(item, 76)
    leader = next(line for line in lines if line.startswith(">"))
    assert "#3 Build better / Get started" in leader and "P(best)" in leader and "62.0%" in leader
    assert "traffic" in leader and "60.5%" in leader  # allocation, what is served
    assert "weight" not in leader and "55.8%" not in leader  # P(best) x (1 - holdout) is not a share of traffic
    assert leader.count("█") > next(line for line in lines if "#1 " in line).count("█")
    assert lines[-1] == "> leader; holdout 10% see #1; traffic = share of the rest"
    assert all(len(line) <= 76 for line in lines)


def test_traffic_without_an_allocation_is_a_dash_and_the_columns_stay_aligned(item):
    for body in (item.state, item.results):
        for variant in body["variants"]:
            variant.pop("allocation")
    lines = panels.allocation_lines(item, 76)[:-1]
    assert all(line.split("traffic")[1].strip() == "-" for line in lines), lines
    assert len({len(line) for line in lines}) == 1


def test_reward_rates_have_intervals_drawn_on_one_scale(item):
    lines = panels.reward_lines(item, 100)
    third = next(line for line in lines if "#3 " in line)
    assert "11.88%" in third and "11.80%" in third and "[10.30%, 13.40%]" in third
    assert "●" in third and "├" in third and "┤" in third


def test_lift_panel_has_measured_lift_policy_and_ceiling(item):
    text = "\n".join(panels.lift_lines(item, 76))
    assert "Measured vs holdout  +21.8% [-22.0%, +65.6%]  p = 0.330" in text
    assert "12.18% of 2710 users" in text and "10.00% of 290 users" in text
    assert "+14.8% [+3.1%, +27.4%]" in text and "+18.0% [+4.2%, +32.9%]  progress 82%" in text
    assert "Sample ratio         ok (p = 0.54)" in text


def test_lift_panel_draws_the_stored_lift_history_and_a_guardrail_stop(item):
    assert not any("Lift history" in line for line in panels.lift_lines(item, 76))  # a server without it
    item.lift_history = {"points": [{"date": f"2026-11-{d:02d}", "policy_lift_percent": lift,
                                     "best_lift_percent": lift + 2} for d, lift in ((18, 1.0), (19, 5.0), (20, 9.0))]}
    item.guardrails = {"guardrails": [], "stop_reason": {
        "metric_name": "Retained", "lift_percent": -12.5, "p_value": 0.004, "stopped_at": "2026-11-21T12:00:00Z"}}
    lines = panels.lift_lines(item, 76)
    policy = next(line for line in lines if line.startswith("Lift history (policy)"))
    assert "▁" in policy and "█" in policy and "+9.0% (3 day(s))" in policy
    assert any(line.startswith("Lift history (best  )") and "+11.0%" in line for line in lines)
    assert any(line.startswith("STOPPED by guardrail Retained: lift -12.5%, p = 0.004") for line in lines)
    assert all(len(line) <= 76 for line in lines)


def test_a_sample_ratio_mismatch_is_called_out(item):
    item.results["srm"] = {"p_value": 0.0001, "ok": False}
    assert any("MISMATCH" in line for line in panels.lift_lines(item, 76))


def test_factor_importance_bars_are_relative_to_the_strongest(item):
    lines = panels.importance_lines(item, 76)
    assert lines[0].startswith("headline") and "0.0172" in lines[0]
    assert lines[0].count("█") > lines[2].count("█") and lines[-1].startswith("interactions")


def test_allocation_over_time_counts_only_optimized_exposures(item):
    lines = panels.timeline_lines(item, 76)
    assert "max 2200" in lines[0] and "2 day(s): 2026-11-20 → 2026-11-21" in lines[1]
    baseline = next(line for line in lines if "#1 " in line)
    # day 2: (320 - 190 holdout) / (2200 - 190) = 6%
    assert baseline.endswith("6% last day")
    third = next(line for line in lines if "#3 " in line)
    assert third.endswith("52% last day")  # 1050 / 2010


def test_model_panel_has_version_training_and_last_run(item):
    text = "\n".join(panels.model_lines(item, 76, NOW))
    assert "Version      12" in text and "2026-11-21 12:00:00Z (5m ago) on 4100 observations" in text
    assert "Last run     succeeded (schedule, 5m ago, 4100 observations)" in text


def test_untrained_means_no_leader_and_equal_shares(item):
    item.state.update(version=0, status="untrained", trained_at=None)
    item.results.update(model_version=0, stats=None)
    assert views.leader(item) is None
    assert "untrained" in panels.allocation_lines(item, 76)[-1]


@pytest.mark.parametrize("broken", [{"variants": [{"number": "x", "weight": "lots"}]}, {"variants": [None]}])
def test_a_body_of_an_unknown_shape_is_not_available_not_a_crash(item, broken):
    item.state, item.results = broken, broken
    for title, lines in panels.panels(item, 76, NOW):
        assert lines, title
    assert views.list_rows(Snapshot("http://x", [item]), 80)
