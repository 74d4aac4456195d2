"""One training run end to end: publication, determinism, bias, exclusions, serving snapshot."""

from __future__ import annotations

import numpy as np
import pytest

from levered_server.engine import policy
from levered_server.engine.train import generator, train
from levered_server.engine.variants import Design
from tests.engine.test_cmab import synthetic

MODEL = "4754cae0-9a5d-4691-91af-6d15ccc1f82e"
DESIGN = Design.build([3, 2], names=["headline", "cta_text"])
SMALL = synthetic("bool", 400)  # 18 cells × 400 exposures: nothing certain yet


@pytest.mark.parametrize("kind", ["mab", "cmab"])
def test_a_version_reports_the_same_numbers_every_time(kind):
    first = train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 12), holdout_share=0.1).version
    again = train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 12), holdout_share=0.1).version
    other = train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 13), holdout_share=0.1).version
    assert np.array_equal(first.draws, again.draws) and not np.array_equal(first.draws, other.draws)
    assert first.draws.shape == (1000, 6)
    v = first.variants
    assert v.prob_best.sum() == pytest.approx(1.0) and v.allocation.sum() == pytest.approx(1.0)
    assert v.weight == pytest.approx(0.9 * v.prob_best)
    assert (v.lo < v.mean).all() and (v.mean < v.hi).all()
    assert first.observations == 7200 and first.exposures.sum() == 7200
    assert first.expected_reward.lo < first.expected_reward.mean < first.expected_reward.hi
    assert [i.kind for i in first.factor_importance].count("design") == 2
    means = [i.mean for i in first.factor_importance]
    assert means == sorted(means, reverse=True)


def test_mab_with_plain_thompson_sampling_allocates_by_prob_best():
    plain = policy.PolicySettings(thompson_scale=1.0)
    version = train("mab", "bool", DESIGN, SMALL, rng=generator(MODEL, 1), settings=plain).version
    assert version.variants.allocation == pytest.approx(version.variants.prob_best)
    assert version.context_importance == []


@pytest.mark.parametrize("kind", ["mab", "cmab"])
def test_the_thompson_scale_sharpens_only_the_allocation(kind):
    plain = train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 3),
                  settings=policy.PolicySettings(thompson_scale=1.0)).version
    sharp = train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 3),
                  settings=policy.PolicySettings(thompson_scale=0.5)).version
    for field in ("mean", "lo", "hi", "prob_best", "weight"):
        assert getattr(sharp.variants, field) == pytest.approx(getattr(plain.variants, field))
    leader = int(np.argmax(plain.variants.prob_best))

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    # Narrower serving draws: more traffic to the leader, a more concentrated allocation.
    assert sharp.variants.allocation[leader] > plain.variants.allocation[leader]
    assert entropy(sharp.variants.allocation) < entropy(plain.variants.allocation) - 0.05
    assert sharp.variants.allocation.sum() == pytest.approx(1.0)


def test_cmab_reports_context_importance_and_personalizes():
    version = train("cmab", "bool", DESIGN, synthetic("bool", 40_000), rng=generator(MODEL, 1)).version
    assert [i.factor for i in version.context_importance] == ["device"]
    mobile, desktop = (version.policy.allocation({"device": d}) for d in ("mobile", "desktop"))
    assert np.argmax(mobile) != np.argmax(desktop)
    assert version.policy.allocation({"device": "smart-fridge"}).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["mab", "cmab"])
def test_bias_widens_only_the_allocation(kind):
    plain = train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 2)).version
    biased = train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 2), bias={"headline": 5}).version
    for field in ("mean", "lo", "hi", "prob_best", "weight"):
        assert getattr(biased.variants, field) == pytest.approx(getattr(plain.variants, field))
    assert [i.mean for i in biased.factor_importance] == [i.mean for i in plain.factor_importance]
    assert not np.allclose(biased.variants.allocation, plain.variants.allocation)

    def spread(alloc: np.ndarray) -> float:  # share kept off the most likely headline
        per_level = np.bincount(DESIGN.levels[:, 0], weights=alloc)
        return 1 - per_level.max()

    assert spread(biased.variants.allocation) > spread(plain.variants.allocation)
    with pytest.raises(ValueError):
        train(kind, "bool", DESIGN, SMALL, rng=generator(MODEL, 2), bias={"colour": 1})


def test_burn_in_publishes_nothing_but_reports_the_data():
    few = synthetic("bool", 5)  # 90 observations
    out = train("cmab", "bool", DESIGN, few, rng=generator(MODEL, 1))
    assert not out.published and out.version is None and out.observations == 90
    assert out.historic_reward == pytest.approx(few.reward_sum.sum() / 90)
    assert train("cmab", "bool", DESIGN, few, rng=generator(MODEL, 1),
                 settings=policy.PolicySettings(min_observations=90)).published


@pytest.mark.parametrize("kind", ["mab", "cmab"])
def test_excluded_combinations_are_never_allocated(kind):
    design = Design.build([3, 2], servable=[1, 2, 3, 4, 5], names=["headline", "cta_text"])
    version = train(kind, "bool", design, synthetic("bool", 2_000), rng=generator(MODEL, 1)).version
    assert version.variants.numbers.tolist() == [1, 2, 3, 4, 5]
    rng = np.random.default_rng(0)
    served = {version.policy.choose({"device": "mobile"}, rng)[0] for _ in range(300)}
    assert 6 not in served and len(version.policy.allocation({"device": "mobile"})) == 5


def test_numeric_rewards_train_both_models():
    stats = synthetic("numeric", 2_000)
    for kind in ("mab", "cmab"):
        version = train(kind, "numeric", DESIGN, stats, rng=generator(MODEL, 1)).version
        assert version.lift.best_vs_baseline_percent is None  # the baseline's mean is negative
        assert version.variants.mean.argmax() == version.lift.best_number - 1


def test_a_restart_refits_the_same_version_from_stored_statistics():
    import json
    stored = json.dumps(SMALL.to_dict())
    before = train("cmab", "bool", DESIGN, SMALL, rng=generator(MODEL, 4)).version
    after = train("cmab", "bool", DESIGN, type(SMALL).from_dict(json.loads(stored)),
                  rng=generator(MODEL, 4)).version
    assert np.array_equal(before.draws, after.draws)
    codes = {"device": "tablet"}
    assert np.array_equal(before.policy.allocation(codes), after.policy.allocation(codes))


def test_counts_and_propensity_estimates_ride_along():
    from levered_server.engine.summaries import variant_counts
    counts = variant_counts(SMALL, DESIGN.numbers)
    assert counts.exposures.tolist() == [1200.0] * 6
    assert counts.rate == pytest.approx(counts.reward_sum / 1200)
    version = train("mab", "bool", DESIGN, SMALL, rng=generator(MODEL, 1)).version
    assert version.ipw.mean.shape == (6,)  # SMALL logs no propensities: all NaN
    assert np.isnan(version.ipw.mean).all()
