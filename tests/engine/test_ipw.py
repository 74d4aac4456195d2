"""Inverse-propensity estimates stay unbiased when the allocation drifts with the base rate."""

from __future__ import annotations

import numpy as np
import pytest

from levered_server.engine.ipw import doubly_robust, ipw_estimates
from levered_server.engine.mab import fit_mab
from levered_server.engine.stats import CellStats
from levered_server.engine.variants import Design

DESIGN = Design.build([2], names=["headline"])


def drifting() -> CellStats:
    """Two equal periods: rates fall by half while traffic moves from #1 to #2.

    Over the whole population #1 converts at 0.075 and #2 at 0.09 (+20 %), but the pooled
    per-variant rates say #1 is better (0.095 vs 0.066).
    """
    period = 100_000
    rows = [(1, 0.9, 0.10), (2, 0.1, 0.12), (1, 0.1, 0.05), (2, 0.9, 0.06)]
    variant = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    rate = np.array([r[2] for r in rows])
    n = period * p
    reward = n * rate
    return CellStats.build(variant, None, None, {
        "exposures": n, "reward_count": reward, "reward_sum": reward, "reward_sum_sq": reward,
        "propensity_count": n, "ipw_weight_sum": n / p, "ipw_weight_sq_sum": n / p**2,
        "ipw_reward_sum": reward / p, "ipw_reward_sq_sum": reward / p,
        "ipw_reward_w2_sum": reward / p**2, "ipw_reward_sq_w2_sum": reward / p**2})


def test_hajek_recovers_the_population_rates_where_pooled_rates_mislead():
    stats = drifting()
    est = ipw_estimates(stats, DESIGN.numbers)
    assert est.mean == pytest.approx([0.075, 0.09])
    pooled = stats.per_variant(DESIGN.numbers, "reward_sum") / stats.per_variant(DESIGN.numbers, "exposures")
    assert pooled == pytest.approx([0.095, 0.066])
    lift, se = est.lift_percent()
    assert lift[1] == pytest.approx(20.0) and se[1] > 0


def test_propensity_weighted_mab_centres_on_the_hajek_estimate():
    stats = drifting()
    naive = fit_mab(stats, DESIGN, "bool").draw(np.random.default_rng(0), 4000).mean(axis=0)
    weighted = fit_mab(stats, DESIGN, "bool", propensity_weighted=True)
    means = weighted.draw(np.random.default_rng(0), 4000).mean(axis=0)
    assert naive[0] > naive[1]
    assert means == pytest.approx([0.075, 0.09], abs=0.002)


def test_the_variance_from_cell_sums_equals_the_one_from_rows():
    rng = np.random.default_rng(4)
    prop = rng.choice([0.2, 0.5, 0.8], size=3000)
    r = rng.exponential(2.0, size=3000) * (rng.random(3000) < 0.3)
    w = 1 / prop
    mean = (w * r).sum() / w.sum()
    direct = np.sqrt((w**2 * (r - mean) ** 2).sum()) / w.sum()
    one = np.ones(1)
    stats = CellStats.build(np.array([1]), None, None, {
        "ipw_weight_sum": one * w.sum(), "ipw_weight_sq_sum": one * (w**2).sum(),
        "ipw_reward_sum": one * (w * r).sum(), "ipw_reward_w2_sum": one * (w**2 * r).sum(),
        "ipw_reward_sq_w2_sum": one * (w**2 * r**2).sum()})
    est = ipw_estimates(stats, np.array([1, 2]))
    assert est.mean[0] == pytest.approx(mean) and est.se[0] == pytest.approx(direct)
    assert np.isnan(est.mean[1]) and est.effective_n[1] == 0


def contextual() -> tuple[CellStats, np.ndarray]:
    """Two equally common devices; #2 gets 90 % of mobile traffic but 20 % of desktop."""
    population = np.array([50_000.0, 50_000.0])
    share = {1: np.array([0.1, 0.8]), 2: np.array([0.9, 0.2])}
    rates = np.array([[0.04, 0.08], [0.06, 0.07]])  # [device, variant]
    variant, context, sums = [], [], {name: [] for name in (
        "exposures", "reward_sum", "ipw_weight_sum", "ipw_weight_sq_sum", "ipw_reward_sum",
        "ipw_reward_w2_sum", "ipw_reward_sq_w2_sum")}
    for v in (1, 2):
        for d in (0, 1):
            p = share[v][d]
            n = population[d] * p
            r = n * rates[d, v - 1]
            variant.append(v)
            context.append([d])
            for name, value in zip(sums, (n, r, n / p, n / p**2, r / p, r / p**2, r / p**2), strict=True):
                sums[name].append(value)
    stats = CellStats.build(np.array(variant), np.array(context), None, sums, ("device",),
                            (("mobile", "desktop"),))
    return stats, rates


def test_doubly_robust_is_exact_with_a_wrong_model_and_right_propensities():
    stats, rates = contextual()
    truth = rates.mean(axis=0)  # devices are equally common
    cells = np.array([[0], [1]])
    wrong = rates + np.array([[0.02, -0.01], [-0.03, 0.005]])
    est = doubly_robust(stats, DESIGN.numbers, cells, np.array([0.5, 0.5]), wrong)
    assert est.mean == pytest.approx(truth)
    pooled = stats.per_variant(DESIGN.numbers, "reward_sum") / stats.per_variant(DESIGN.numbers, "exposures")
    assert not np.allclose(pooled, truth)  # the contextual allocation biases pooled rates
    exact = doubly_robust(stats, DESIGN.numbers, cells, np.array([0.5, 0.5]), rates)
    assert exact.mean == pytest.approx(truth)
    assert (exact.se < est.se).all()  # residuals around the true rates are the smallest
