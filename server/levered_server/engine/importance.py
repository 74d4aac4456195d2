"""Factor, context and interaction importance from posterior draws (API.md 16.4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from levered_server.engine.variants import Design


@dataclasses.dataclass(frozen=True)
class Importance:
    """One factor's score in reward units: mean, quartiles and the 95 % interval."""

    factor: str
    kind: str
    mean: float
    q1: float
    q3: float
    lo: float
    hi: float


def _summary(factor: str, kind: str, values: np.ndarray) -> Importance:
    lo, q1, q3, hi = np.quantile(values, [0.025, 0.25, 0.75, 0.975])
    return Importance(factor, kind, float(values.mean()), float(q1), float(q3), float(lo), float(hi))


def level_means(draws: np.ndarray, levels: np.ndarray, count: int) -> np.ndarray:
    """Return (S, count) means of the draws per level; NaN for levels with no variant."""
    onehot = np.eye(count)[levels]
    sizes = onehot.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes > 0, (draws @ onehot) / sizes, np.nan)


def design_importance(draws: np.ndarray, design: Design, names: Sequence[str]) -> list[Importance]:
    """Per design factor: max − min over levels of the level means of μ_v^s."""
    out = []
    for f, name in enumerate(names):
        m = level_means(draws, design.levels[:, f], design.level_counts[f])
        out.append(_summary(name, "design", np.nanmax(m, axis=1) - np.nanmin(m, axis=1)))
    return out


def context_importance(cell_means: np.ndarray, cell_codes: np.ndarray, cell_weights: np.ndarray,
                       names: Sequence[str],
                       levels: Sequence[Sequence[str | None]]) -> list[Importance]:
    """Per context factor with ≥ 2 observed non-missing levels: max − min of level means.

    ``cell_means`` is (C, S): per training context cell and draw, the mean over servable
    variants of the expected reward; ``cell_weights`` are the cells' exposures.
    """
    out = []
    for j, name in enumerate(names):
        kept = [k for k, value in enumerate(levels[j]) if value is not None]
        per_level = []
        for k in kept:
            mask = cell_codes[:, j] == k
            w = cell_weights[mask]
            if w.sum() > 0:
                per_level.append(w @ cell_means[mask] / w.sum())
        if len(per_level) >= 2:
            stacked = np.array(per_level)
            out.append(_summary(name, "context", stacked.max(axis=0) - stacked.min(axis=0)))
    return out


def interaction_importance(draws: np.ndarray, design: Design) -> Importance | None:
    """Root mean square distance of μ_v^s from its additive fit; None with one factor."""
    if len(design.level_counts) < 2:
        return None
    grand = draws.mean(axis=1, keepdims=True)
    additive = np.repeat(grand, draws.shape[1], axis=1)
    for f, count in enumerate(design.level_counts):
        m = level_means(draws, design.levels[:, f], count)
        additive += m[:, design.levels[:, f]] - grand
    return _summary("interaction", "interaction", np.sqrt(((draws - additive) ** 2).mean(axis=1)))


def ranked(items: list[Importance]) -> list[Importance]:
    """Sort by mean, descending (the order of ``factor_importance``)."""
    return sorted(items, key=lambda item: -item.mean)
