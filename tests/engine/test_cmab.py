"""`cmab` recovers known effects from synthetic cell statistics; unseen contexts fall back."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from levered_server.engine.cmab import CmabPrior, fit_cmab
from levered_server.engine.stats import CellStats
from levered_server.engine.variants import Design

DESIGN = Design.build([3, 2], names=["headline", "cta_text"])
DEVICES = ("mobile", "desktop", "tablet")
HEADLINE, CTA, DEVICE = np.array([0.0, 0.3, -0.2]), np.array([0.0, 0.15]), np.array([0.0, -0.3, 0.1])
MOBILE_SCALE_UP = 0.6  # device × headline: "Scale up" works on mobile only


def true_eta(device: int, strength: float = 1.0) -> np.ndarray:
    h, c = DESIGN.levels[:, 0], DESIGN.levels[:, 1]
    effects = HEADLINE[h] + CTA[c] + MOBILE_SCALE_UP * ((h == 2) & (device == 0))
    return -2.5 + DEVICE[device] + strength * effects


def synthetic(reward_type: str, exposures: int, seed: int = 0, strength: float = 1.0) -> CellStats:
    rng = np.random.default_rng(seed)
    variant, context, sums = [], [], {"exposures": [], "reward_count": [], "reward_sum": [], "reward_sum_sq": []}
    for d in range(3):
        for k, eta in enumerate(true_eta(d, strength)):
            if reward_type == "bool":
                y = rng.binomial(exposures, expit(eta))
                total, square = y, y
            else:  # numeric reward = eta + N(0, 1) per exposure, summed per cell
                total = exposures * eta + rng.normal(0, np.sqrt(exposures))
                square = exposures * (1 + eta**2)
                y = exposures
            variant.append(DESIGN.numbers[k])
            context.append([d])
            for name, value in zip(sums, (exposures, y, total, square), strict=True):
                sums[name].append(value)
    return CellStats.build(np.array(variant), np.array(context), None, sums, ("device",),
                           (DEVICES,))


@pytest.mark.parametrize("reward_type", ["bool", "numeric"])
def test_recovers_main_effects_and_the_device_by_headline_interaction(reward_type):
    post = fit_cmab(synthetic(reward_type, 40_000), DESIGN, reward_type)
    draws = post.sample(np.random.default_rng(1), 2000)
    eta = {d: draws.eta(np.array([d])).mean(axis=0) for d in range(3)}
    truth = {d: true_eta(d) for d in range(3)}
    for d in range(3):  # contrasts to the baseline variant within each device
        assert eta[d] - eta[d][0] == pytest.approx(truth[d] - truth[d][0], abs=0.08)
    # The interaction contrast: Scale up vs Ship faster, mobile minus desktop.
    contrast = (eta[0][4] - eta[0][0]) - (eta[1][4] - eta[1][0])
    assert contrast == pytest.approx(MOBILE_SCALE_UP, abs=0.1)
    best = {d: int(np.argmax(eta[d])) for d in range(3)}
    assert best == {d: int(np.argmax(truth[d])) for d in range(3)}
    assert best[0] != best[1]


def test_an_unseen_context_gets_the_population_average_linear_predictor():
    stats = synthetic("bool", 5_000)
    post = fit_cmab(stats, DESIGN, "bool")
    draws = post.sample(np.random.default_rng(2), 300)
    _, weights = stats.context_cells()
    average = sum(w * draws.eta(np.array([d])) for d, w in enumerate(weights))
    assert draws.eta(np.array([-1])) == pytest.approx(average)
    assert stats.encode_context({"device": "smart-fridge"}).tolist() == [-1]


def test_interactions_shrink_toward_the_additive_model_with_little_data():
    post = fit_cmab(synthetic("bool", 60, seed=3), DESIGN, "bool")
    draws = post.sample(np.random.default_rng(4), 2000)
    eta = {d: draws.eta(np.array([d])).mean(axis=0) for d in range(2)}
    raw = {d: true_eta(d) for d in range(2)}
    fitted = abs((eta[0][4] - eta[0][0]) - (eta[1][4] - eta[1][0]))
    assert fitted < 0.5 * abs((raw[0][4] - raw[0][0]) - (raw[1][4] - raw[1][0]))


def test_cells_of_excluded_variants_are_ignored():
    design = Design.build([3, 2], servable=[1, 2, 3, 4, 5], names=["headline", "cta_text"])
    post = fit_cmab(synthetic("bool", 2_000), design, "bool")
    assert post.sample(np.random.default_rng(0), 10).base.shape == (10, 5)


@pytest.mark.parametrize("reward_type", ["bool", "numeric"])
@pytest.mark.parametrize("hyper", [0.0, 1.0])
def test_the_prior_scales_follow_the_size_of_the_effects(reward_type, hyper):
    prior = CmabPrior(hyper=hyper)
    strong = fit_cmab(synthetic(reward_type, 40_000), DESIGN, reward_type, prior).scales
    weak = fit_cmab(synthetic(reward_type, 40_000, strength=0.05), DESIGN, reward_type,
                    prior).scales
    caps = prior.scales()
    assert all(prior.least <= strong[b] <= caps[b] for b in caps)
    # Effects 20× smaller: the design blocks are estimated narrower, so they shrink more; by
    # more than half with plain empirical Bayes, a little less with the hyperprior's pull.
    factor = 0.5 if hyper == 0 else 0.6
    assert weak["main"] < factor * strong["main"]
    assert weak["design_context"] < factor * strong["design_context"]


def test_with_almost_no_data_the_hyperprior_keeps_the_scales_off_the_floor():
    """Plain empirical Bayes sets the blocks the data cannot inform to the floor: their effects
    would be served as if known to be zero, and later refits start from there."""
    stats = synthetic("bool", 3)  # ~3 exposures per cell, barely a conversion
    plain = fit_cmab(stats, DESIGN, "bool", CmabPrior(hyper=0.0)).scales
    default = fit_cmab(stats, DESIGN, "bool").scales
    caps = CmabPrior().scales()
    assert any(plain[b] <= CmabPrior().least for b in caps), plain
    assert all(default[b] >= caps[b] / 4 for b in caps), default


def test_the_scale_estimate_is_a_fixed_point_and_a_warm_start_lands_on_it():
    stats = synthetic("bool", 5_000)
    cold = fit_cmab(stats, DESIGN, "bool")
    again = fit_cmab(stats, DESIGN, "bool", start=cold.scales, rounds=2)
    for block, value in cold.scales.items():
        assert again.scales[block] == pytest.approx(value, rel=0.05)
    assert again.mean == pytest.approx(cold.mean, abs=0.02)


def test_a_fixed_prior_keeps_its_scales():
    prior = CmabPrior(adaptive=False)
    post = fit_cmab(synthetic("bool", 5_000), DESIGN, "bool", prior, start={"main": 0.01})
    assert post.scales == prior.scales()


def test_estimated_scales_remove_the_winners_curse_of_a_wide_fixed_prior():
    """Many seeds of a small true effect: the chosen variant's lift is not inflated."""
    errors = {"fixed": [], "estimated": []}
    for seed in range(12):
        stats = synthetic("bool", 3_000, seed=seed, strength=0.3)
        truth = np.mean([true_eta(d, 0.3) for d in range(3)], axis=0)
        for name, prior in (("fixed", CmabPrior(adaptive=False)), ("estimated", CmabPrior())):
            draws = fit_cmab(stats, DESIGN, "bool", prior).sample(np.random.default_rng(seed), 1000)
            eta = np.mean([draws.eta(np.array([d])) for d in range(3)], axis=0).mean(axis=0)
            chosen = int(np.argmax(eta))
            errors[name].append((eta[chosen] - eta[0]) - (truth[chosen] - truth[0]))
    assert abs(np.mean(errors["estimated"])) < abs(np.mean(errors["fixed"]))
