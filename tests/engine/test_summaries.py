"""Posterior summaries (docs/api.md 16.1), checked with the 6.6 example and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from levered_server.engine import summaries
from levered_server.engine.stats import CellStats

NUMBERS = np.arange(1, 6)
MEANS = np.array([0.100, 0.104, 0.118, 0.112, 0.097])  # 6.6 expected_reward_mean
ALLOCATION = np.array([0.012, 0.048, 0.605, 0.315, 0.020])
PROB_BEST = np.array([0.01, 0.05, 0.62, 0.30, 0.02])


def test_the_results_example_lifts_and_progress():
    draws = np.tile(MEANS, (1000, 1))  # a point-mass posterior at the example's means
    out = summaries.lift(draws, ALLOCATION, PROB_BEST, NUMBERS)
    assert out.best_number == 3
    assert round(out.estimated_improvement_percent, 1) == 14.8
    assert round(out.best_vs_baseline_percent, 1) == 18.0
    assert round(out.estimated_progress, 3) == 0.822
    policy_mean = ALLOCATION @ MEANS  # Ē
    assert out.estimated_improvement_interval == pytest.approx((100 * (policy_mean / 0.1 - 1),) * 2)
    assert summaries.expected_reward(draws, ALLOCATION).mean == pytest.approx(policy_mean)


def test_ties_for_best_go_to_the_lowest_number_and_a_best_baseline_reports_its_share():
    draws = np.tile([0.2, 0.1, 0.2], (10, 1))
    out = summaries.lift(draws, [0.5, 0.2, 0.3], np.array([0.4, 0.2, 0.4]), np.array([1, 2, 3]))
    assert out.best_number == 1 and out.best_vs_baseline_percent == 0.0
    assert out.estimated_progress == 0.5


def test_lifts_are_null_when_the_baseline_mean_is_not_positive():
    draws = np.tile([0.0, 0.1], (10, 1))
    out = summaries.lift(draws, [0.5, 0.5], np.array([0.0, 1.0]), np.array([1, 2]))
    assert out.estimated_improvement_percent is None and out.estimated_progress is None
    assert out.best_number == 2


def test_variant_summary_uses_linear_quantiles_and_shares_ties():
    rng = np.random.default_rng(7)
    draws = rng.normal(size=(2000, 3))
    draws[:5] = 1.0  # five draws where all three tie
    out = summaries.summarize_variants(draws, NUMBERS[:3], np.full(3, 1 / 3), holdout_share=0.1)
    assert out.lo == pytest.approx(np.quantile(draws, 0.025, axis=0))
    assert out.prob_best.sum() == pytest.approx(1.0)
    wins = np.bincount(draws[5:].argmax(axis=1), minlength=3) + 5 / 3
    assert out.prob_best == pytest.approx(wins / 2000)
    assert out.weight == pytest.approx(out.prob_best * 0.9)


def test_prob_best_of_two_betas_matches_numerical_integration():
    from scipy import integrate, stats
    a, b = stats.beta(31, 71), stats.beta(41, 61)
    exact = integrate.quad(lambda x: a.pdf(x) * b.cdf(x), 0, 1)[0]  # P(A > B)
    rng = np.random.default_rng(3)
    draws = np.column_stack([a.rvs(200_000, random_state=rng), b.rvs(200_000, random_state=rng)])
    assert summaries.prob_best(draws)[0] == pytest.approx(exact, abs=0.005)


def test_historic_reward_is_the_mean_reward_per_exposure():
    stats = CellStats.build(np.array([1, 2]), None, np.array([True, False]),
                            {"exposures": [10, 30], "reward_sum": [1, 5]})
    assert summaries.historic_reward(stats) == pytest.approx(6 / 40)
    assert summaries.historic_reward(CellStats.build(np.array([], int), None, None, {})) is None
