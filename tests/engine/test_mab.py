"""Per-variant posteriors of `mab` against their closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from levered_server.engine.mab import fit_mab
from levered_server.engine.stats import CellStats
from levered_server.engine.variants import Design

DESIGN = Design.build([2], names=["headline"])


def cells(exposures, rewards, squares=None, holdout=(False, False)) -> CellStats:
    return CellStats.build(np.array([1, 2]), None, np.array(holdout),
                           {"exposures": exposures, "reward_count": rewards, "reward_sum": rewards,
                            "reward_sum_sq": rewards if squares is None else squares})


def test_beta_posterior_has_the_uniform_prior_and_matches_scipy():
    post = fit_mab(cells([100, 250], [12, 40]), DESIGN, "bool")
    assert [p.tolist() for p in post.params] == [[13.0, 41.0], [89.0, 211.0]]
    draws = post.draw(np.random.default_rng(5), 200_000)
    exact = sps.beta(13, 89)
    assert draws[:, 0].mean() == pytest.approx(exact.mean(), abs=5e-4)
    assert np.quantile(draws[:, 0], [0.025, 0.975]) == pytest.approx(exact.ppf([0.025, 0.975]), abs=1e-3)


def test_holdout_exposures_count_for_the_baseline():
    post = fit_mab(cells([100, 100], [10, 10], holdout=(True, False)), DESIGN, "bool")
    assert post.params[0].tolist() == [11.0, 11.0]


def test_normal_inverse_gamma_marginal_is_the_student_t():
    n, mean, sd = np.array([400.0, 50.0]), np.array([2.0, 3.0]), np.array([1.5, 2.5])
    total, squares = n * mean, n * (sd**2 + mean**2)
    post = fit_mab(cells(n, total, squares), DESIGN, "numeric")
    mu, kappa, alpha, beta = post.params
    # Prior centred on the pooled mean with one pseudo-exposure.
    pooled = total.sum() / n.sum()
    assert mu == pytest.approx((pooled + n * mean) / (1 + n))
    draws = post.draw(np.random.default_rng(9), 200_000)
    t = sps.t(df=2 * alpha[1], loc=mu[1], scale=np.sqrt(beta[1] / (alpha[1] * kappa[1])))
    assert np.quantile(draws[:, 1], [0.025, 0.5, 0.975]) == pytest.approx(t.ppf([0.025, 0.5, 0.975]), abs=0.01)
    assert draws[:, 0].std() == pytest.approx(1.5 / np.sqrt(400), rel=0.05)


def test_an_untried_variant_gets_a_wide_posterior_around_the_pooled_mean():
    post = fit_mab(cells([500, 0], [1000.0, 0.0], [3000.0, 0.0]), DESIGN, "numeric")
    draws = post.draw(np.random.default_rng(1), 20_000)
    assert np.median(draws[:, 1]) == pytest.approx(2.0, abs=0.05)
    assert np.subtract(*np.quantile(draws[:, 1], [0.9, 0.1])) > 20 * draws[:, 0].std()
