"""Allocation from draws: ε mixing, floor, top-two, bias widening, sampling (docs/api.md 2.4, 8.5)."""

from __future__ import annotations

import numpy as np
import pytest

from levered_server.engine import policy
from levered_server.engine.serving import uniform_policy
from levered_server.engine.variants import Design


def test_exploration_share_mixes_with_uniform():
    q = np.array([0.7, 0.2, 0.1, 0.0])
    p = policy.allocation(q, policy.PolicySettings(exploration_share=0.2))
    assert p == pytest.approx(0.8 * q + 0.05)


def test_the_floor_lifts_small_shares_and_keeps_the_order_of_the_rest():
    p = policy.apply_floor(np.array([0.9, 0.06, 0.03, 0.01]), 0.05)
    assert p.sum() == pytest.approx(1.0) and p.min() == pytest.approx(0.05)
    assert p[2] == p[3] == pytest.approx(0.05) and p[0] > p[1] >= 0.05
    assert policy.apply_floor(np.array([1.0, 0.0]), 0.7) == pytest.approx([0.5, 0.5])


def test_top_two_gives_the_leader_beta_and_sums_to_one():
    q = np.array([0.9, 0.1, 0.0])
    p = policy.top_two(q, 0.5)
    assert p.sum() == pytest.approx(1.0)
    # Leader #1: 0.5·0.9 + challenger mass from leader #2 (0.1 × 0.9/0.9)
    assert p == pytest.approx([0.5 * 0.9 + 0.5 * 0.1, 0.5 * 0.1 + 0.5 * 0.9, 0.0])


def test_draw_variant_returns_the_propensity_and_follows_p():
    rng = np.random.default_rng(0)
    p = np.array([0.2, 0.0, 0.8])
    picks = [policy.draw_variant([1, 2, 3], p, rng) for _ in range(4000)]
    assert {n for n, _ in picks} == {1, 3}
    assert all(prop == {1: 0.2, 3: 0.8}[n] for n, prop in picks)
    assert np.mean([n == 3 for n, _ in picks]) == pytest.approx(0.8, abs=0.02)


def test_widening_scales_only_the_biased_factor_around_its_posterior_mean():
    design = Design.build([2, 2], names=["a", "b"])
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.01, (5000, 1)), rng.normal(0, 0.01, (5000, 1))
    draws = 0.1 + np.hstack([-a - b, -a + b, a - b, a + b])
    wide = policy.widen(draws, design, {0: 1.0})  # bias 1 → spread × 2

    def effect(d: np.ndarray, f: int) -> np.ndarray:
        return d[:, design.levels[:, f] == 1].mean(1) - d[:, design.levels[:, f] == 0].mean(1)

    assert effect(wide, 0).std() == pytest.approx(2 * effect(draws, 0).std())
    assert effect(wide, 0).mean() == pytest.approx(effect(draws, 0).mean())
    assert effect(wide, 1) == pytest.approx(effect(draws, 1))


def test_the_untrained_policy_is_uniform_whatever_the_context():
    design = Design.build([3, 2], servable=[1, 2, 3, 5])
    serve = uniform_policy(design, policy.PolicySettings(exploration_share=0.3))
    assert serve.allocation({"anything": 1}) == pytest.approx([0.25] * 4)
    number, propensity = serve.choose(None, np.random.default_rng(0))
    assert number in {1, 2, 3, 5} and propensity == 0.25


def test_burn_in():
    settings = policy.PolicySettings(min_observations=100)
    assert not policy.publishes(99, settings) and policy.publishes(100, settings)
    assert not policy.publishes(0, policy.PolicySettings(min_observations=0))
