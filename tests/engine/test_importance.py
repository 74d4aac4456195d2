"""Importance scores (docs/api.md 16.4) on constructed posteriors with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from levered_server.engine import importance
from levered_server.engine.variants import Design


def additive_draws(design: Design, effects: list[np.ndarray], size: int = 400) -> np.ndarray:
    rng = np.random.default_rng(11)
    base = 0.1 + rng.normal(0, 0.001, size=(size, 1))  # a shared shift moves no importance
    return base + sum(e[design.levels[:, f]] for f, e in enumerate(effects))


def test_design_importance_is_the_spread_of_level_means():
    design = Design.build([3, 2], names=["headline", "cta_text"])
    draws = additive_draws(design, [np.array([0.0, 0.02, -0.01]), np.array([0.0, 0.005])])
    scores = importance.ranked(importance.design_importance(draws, design, design.names))
    assert [s.factor for s in scores] == ["headline", "cta_text"]
    assert scores[0].mean == pytest.approx(0.03) and scores[0].q1 == pytest.approx(0.03)
    assert scores[1].mean == pytest.approx(0.005)
    assert importance.interaction_importance(draws, design).mean == pytest.approx(0.0, abs=1e-12)


def test_interaction_importance_measures_the_non_additive_part():
    design = Design.build([2, 2], names=["a", "b"])
    draws = np.tile([0.1, 0.1, 0.1, 0.14], (50, 1))  # only (a2, b2) is better: pure 2×2 interaction
    # Additive fit misses each cell by ±0.01 (the 2×2 interaction contrast / 4).
    assert importance.interaction_importance(draws, design).mean == pytest.approx(0.01)
    assert importance.interaction_importance(draws[:, :2], Design.build([2], names=["a"])) is None


def test_levels_without_a_servable_variant_are_skipped():
    design = Design.build([3, 2], servable=[1, 2, 3, 4], names=["headline", "cta_text"])
    draws = np.tile([0.1, 0.2, 0.1, 0.2], (20, 1))  # "Scale up" (#5, #6) fully excluded
    scores = {s.factor: s.mean for s in importance.design_importance(draws, design, design.names)}
    assert scores["cta_text"] == pytest.approx(0.1) and scores["headline"] == pytest.approx(0.0)


def test_context_importance_needs_two_observed_levels_and_ignores_missing():
    cell_means = np.array([[0.10] * 4, [0.16] * 4, [0.50] * 4])  # (cells, draws)
    codes = np.array([[0, 0], [1, 0], [2, 0]])
    levels = [("mobile", "desktop", None), ("fr",)]
    scores = importance.context_importance(cell_means, codes, np.array([1.0, 1.0, 5.0]),
                                           ["device", "country"], levels)
    assert [s.factor for s in scores] == ["device"]
    assert scores[0].mean == pytest.approx(0.06) and scores[0].kind == "context"
