"""The uniform-random policy: every servable variant equally likely (untrained models)."""

from __future__ import annotations

import random
from collections.abc import Sequence


def allocation(numbers: Sequence[int], exploration_share: float = 0.0) -> dict[int, float]:
    """p_v = (1 − ε)·q_v + ε/K with q_v = 1/K, which is 1/K for every variant."""
    k = len(numbers)
    return {n: (1 - exploration_share) / k + exploration_share / k for n in numbers}


def draw(alloc: dict[int, float], rng: random.Random) -> tuple[int, float]:
    """Sample one variant number from an allocation; return it with its propensity."""
    numbers = list(alloc)
    chosen = rng.choices(numbers, weights=[alloc[n] for n in numbers], k=1)[0]
    return chosen, alloc[chosen]
